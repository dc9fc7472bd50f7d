/// HOST and PORT given apart, as iperf3's fingers type them (`-c HOST -p PORT`,
/// `-B HOST -p PORT`), joined into the `HOST:PORT` / `[V6]:PORT` text the CLIs parse.
public enum Endpoint {
    /// Whether `text` already names a port: `[V6]:PORT`, `HOST:PORT` (one colon), or a bare number.
    public static func hasPort(_ text: String) -> Bool {
        if text.hasPrefix("[") { return text.contains("]:") }
        if text.allSatisfy(\.isNumber) { return !text.isEmpty }
        return text.split(separator: ":", omittingEmptySubsequences: false).count == 2
    }

    /// `host` with `port` (nil: `host` as given, which must then carry its own port).
    /// A host that already names a port and a different `port` is an error: the
    /// message says to give the port once.
    public static func join(_ host: String, port: UInt16?, hostFlag: String, portFlag: String = "--port") -> Result<String, EndpointError> {
        guard let port else { return .success(host) }
        if hasPort(host) {
            let given = host.hasPrefix("[") ? host.split(separator: "]").last.map { String($0.dropFirst()) }
                                            : host.split(separator: ":").last.map(String.init)
            return given == String(port) ? .success(host)
                : .failure(EndpointError(description: "\(hostFlag) '\(host)' has a port and \(portFlag) \(port) another: give the port once"))
        }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return .success(bare.contains(":") ? "[\(bare)]:\(port)" : "\(bare):\(port)")
    }
}

/// A host and a port that do not fit together.
public struct EndpointError: Error, CustomStringConvertible, Equatable {
    /// What to change, naming the flags.
    public var description: String
}
