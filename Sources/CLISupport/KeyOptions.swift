import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Keyed streams (SPEC §14), the same option on zc-send and zc-recv: the file holding the
/// 32-byte secret both ends share. Read by the command (StreamSecret), not here: CLISupport
/// does not know the protocol.
public struct KeyOptions: ParsableArguments {
    @Option(name: .customLong("key"),
            help: ArgumentHelp("Keyed streams (SPEC §14): the shared secret, a file of 32 random bytes or 64 hex digits (make one: head -c 32 /dev/urandom > zc.key; keep it private). Every datagram is then authenticated (AES-256-GCM); datagrams without a valid tag are counted unauthenticated and ignored. Default: $ZC_KEY_FILE.",
                               valueName: "FILE"))
    public var keyFile: String?

    public init() {}

    /// The key file: `--key`, else `ZC_KEY_FILE` when set and not empty; nil: no key.
    public var path: String? {
        if let keyFile { return keyFile }
        guard let env = getenv("ZC_KEY_FILE") else { return nil }
        let value = String(cString: env)
        return value.isEmpty ? nil : value
    }
}
