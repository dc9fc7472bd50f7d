import COpenSSL

/// Seals or opens keyed datagrams under one key (SPEC §14.3): AES-256-GCM from OpenSSL's
/// libcrypto, one EVP context set up once with the key and reused for every datagram, so
/// a datagram costs a nonce, one or two updates and the tag: no allocation, no key schedule.
///
/// Nonce: 4 zero bytes, then the trailer's packet number (big-endian). Associated data and
/// plaintext, in wire order:
/// - suite 1 (authenticated): everything before the tag is associated data, no plaintext;
/// - suite 2 (encrypted): the header and the trailer's first 24 bytes are associated
///   data, the payload is the plaintext, encrypted in place.
///
/// A class (not ~Copyable) because stream writers that hold one are copyable values; the
/// context is freed with the last reference.
public final class DatagramAuthenticator: @unchecked Sendable {
    private let context: OpaquePointer
    /// True for a context that seals (encrypts); false for one that opens.
    public let sealing: Bool

    /// A context for `key` (32 bytes): `sealing` to write datagrams, else to check them.
    public init(key: [UInt8], sealing: Bool) {
        precondition(key.count == 32, "AES-256-GCM takes a 32-byte key")
        guard let context = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new failed") }
        self.context = context
        self.sealing = sealing
        var ok = EVP_CipherInit_ex(context, EVP_aes_256_gcm(), nil, nil, nil, sealing ? 1 : 0)
        ok &= key.withUnsafeBufferPointer { EVP_CipherInit_ex(context, nil, nil, $0.baseAddress, nil, -1) }
        precondition(ok == 1, "AES-256-GCM key setup failed")
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Writes the trailer behind the payload of the datagram at `p` (its header of
    /// `headerLength` bytes already written, the payload in place behind it) and seals it:
    /// encrypts the payload in place for suite 2, stores the tag. Returns the datagram's length.
    @inline(__always) @discardableResult
    public func seal(_ p: UnsafeMutableRawPointer, headerLength: Int = DatagramHeader.size, payloadLength: Int,
                     trailer: AuthTrailer) -> Int {
        let trailerAt = headerLength + payloadLength
        trailer.write(to: p + trailerAt)
        let tag = p + trailerAt + AuthTrailer.tagOffset
        var n: Int32 = 0
        var ok = cipher(p, headerLength: headerLength, payloadLength: payloadLength)
        ok &= EVP_CipherFinal_ex(context, tag.assumingMemoryBound(to: UInt8.self), &n)
        ok &= tagParameter(tag) { EVP_CIPHER_CTX_get_params(context, $0) }
        precondition(ok == 1, "AES-256-GCM seal failed")
        return trailerAt + AuthTrailer.size
    }

    /// Seals again, under `packetNumber`, a keyed datagram this context sealed before whose
    /// header changed since (a repair sets REPAIR, SPEC §13.3, §14.5): changed bytes take a
    /// new packet number. For suite 2 the payload in place is ciphertext under the old
    /// number: it is first turned back into plaintext (GCM's counter mode is its own
    /// inverse: the old nonce's keystream over the ciphertext gives the plaintext; that
    /// pass's tag is discarded), then sealed as new. Returns the datagram's length.
    @discardableResult
    public func reseal(_ p: UnsafeMutableRawPointer, headerLength: Int = DatagramHeader.size, payloadLength: Int,
                       packetNumber: UInt64) -> Int {
        precondition(sealing, "reseal needs a sealing context")
        let trailerAt = headerLength + payloadLength
        var trailer = AuthTrailer(reading: p + trailerAt)
        if trailer.suite == AuthTrailer.Suite.encrypted.rawValue && payloadLength > 0 {
            var nonce = Self.nonce(trailer.packetNumber)
            var n: Int32 = 0
            var discarded: (UInt64, UInt64) = (0, 0)
            let bytes = (p + headerLength).assumingMemoryBound(to: UInt8.self)
            var ok = withUnsafeBytes(of: &nonce) {
                EVP_CipherInit_ex(context, nil, nil, nil, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), -1)
            }
            ok &= EVP_CipherUpdate(context, bytes, &n, bytes, Int32(payloadLength))
            ok &= withUnsafeMutableBytes(of: &discarded) {
                EVP_CipherFinal_ex(context, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &n)
            }
            precondition(ok == 1, "AES-256-GCM reseal failed")
        }
        trailer.packetNumber = packetNumber
        return seal(p, headerLength: headerLength, payloadLength: payloadLength, trailer: trailer)
    }

    /// Checks the tag of the keyed datagram at `p` whose payload is `payloadLength` bytes
    /// (the trailer follows it), and for suite 2 decrypts the payload in place. False: the
    /// tag does not match (forged, damaged, or another key); the payload is then garbage.
    @inline(__always)
    public func open(_ p: UnsafeMutableRawPointer, headerLength: Int = DatagramHeader.size, payloadLength: Int) -> Bool {
        let tag = p + headerLength + payloadLength + AuthTrailer.tagOffset
        var n: Int32 = 0
        guard cipher(p, headerLength: headerLength, payloadLength: payloadLength) == 1,
              tagParameter(tag, { EVP_CIPHER_CTX_set_params(context, UnsafePointer($0)) }) == 1 else { return false }
        return EVP_CipherFinal_ex(context, tag.assumingMemoryBound(to: UInt8.self), &n) == 1
    }

    /// Runs `body` with the one-entry parameter list naming the tag at `tag` (16 bytes). The
    /// tag goes through get/set_params rather than EVP_CIPHER_CTX_ctrl: in OpenSSL 3.0 the
    /// ctrl translates itself into these parameters on every call (~20 % of a datagram's tag).
    @inline(__always)
    private func tagParameter(_ tag: UnsafeMutableRawPointer, _ body: (UnsafeMutablePointer<OSSL_PARAM>) -> Int32) -> Int32 {
        var parameters = (OSSL_PARAM_construct_octet_string("tag", tag, AuthTrailer.tagSize), OSSL_PARAM_construct_end())
        return withUnsafeMutablePointer(to: &parameters) { body(UnsafeMutableRawPointer($0).assumingMemoryBound(to: OSSL_PARAM.self)) }
    }

    /// Sets the nonce from the trailer and runs the associated data and payload through
    /// the context (in its direction: sealing encrypts, opening decrypts). 1 on success.
    @inline(__always)
    private func cipher(_ p: UnsafeMutableRawPointer, headerLength: Int, payloadLength: Int) -> Int32 {
        let trailerAt = headerLength + payloadLength
        let trailer = AuthTrailer(reading: p + trailerAt)
        var nonce = Self.nonce(trailer.packetNumber)
        var n: Int32 = 0
        var ok = withUnsafeBytes(of: &nonce) {
            EVP_CipherInit_ex(context, nil, nil, nil, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), -1)
        }
        let bytes = p.assumingMemoryBound(to: UInt8.self)
        if trailer.suite == AuthTrailer.Suite.encrypted.rawValue {
            ok &= EVP_CipherUpdate(context, nil, &n, bytes, Int32(headerLength))
            ok &= EVP_CipherUpdate(context, nil, &n, bytes + trailerAt, Int32(AuthTrailer.tagOffset))
            if payloadLength > 0 {
                ok &= EVP_CipherUpdate(context, bytes + headerLength, &n, bytes + headerLength, Int32(payloadLength))
            }
        } else {
            ok &= EVP_CipherUpdate(context, nil, &n, bytes, Int32(trailerAt + AuthTrailer.tagOffset))
        }
        return ok
    }

    /// The 12-byte nonce: 4 zero bytes, then the packet number big-endian.
    @inline(__always)
    static func nonce(_ packetNumber: UInt64) -> (UInt32, UInt32, UInt32) {
        // Three u32s: a tuple of them has no padding, so its 12 bytes are the nonce as sent.
        (0, UInt32(truncatingIfNeeded: packetNumber >> 32).bigEndian, UInt32(truncatingIfNeeded: packetNumber).bigEndian)
    }
}
