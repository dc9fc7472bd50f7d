// OpenSSL's libcrypto (Debian: libssl-dev) for keyed streams (SPEC §14): AES-256-GCM
// through EVP with one reusable context per key, and HKDF through EVP_KDF. Swift calls
// these functions directly; nothing here but the headers.
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
