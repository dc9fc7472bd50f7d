extension JSONValue {
    /// The same report with `"version"` (``ZCStreamVersion/string``) as its first key,
    /// so a result file says what produced it. Anything but an object is returned as is.
    public func withVersion(_ version: String = ZCStreamVersion.string) -> JSONValue {
        guard case .object(let fields) = self else { return self }
        return .object([("version", .string(version))] + fields.filter { $0.0 != "version" })
    }
}
