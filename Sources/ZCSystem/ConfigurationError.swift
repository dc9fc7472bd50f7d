/// A configuration the library refuses, described in the library's own terms.
///
/// The library names what is wrong by the configuration property
/// (`datagramSize`, `receiveBufferBytes`, `multicast.source`); a program built on it
/// names its own flags instead. ``describe(naming:)`` takes the mapping, so the
/// message is written once and reads right in both places:
///
/// ```swift
/// error.description                       // "datagramSize 9000 is out of range: ..."
/// error.describe { flags[$0] ?? $0 }      // "--size 9000 is out of range: ..."
/// ```
public protocol ConfigurationError: Error, CustomStringConvertible {
    /// One line, each configuration property named through `name`.
    func describe(naming name: (String) -> String) -> String
}

extension ConfigurationError {
    /// One line in the library's terms (properties by their Swift names).
    public var description: String { describe { $0 } }
}
