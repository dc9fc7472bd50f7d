import StreamProtocol

/// A keyed receiver's keys (SPEC §14, `zc-recv --key`): the secret, this receiver's id (the
/// origin of a plain stream's REPORT; a reliable stream's STATUS, NAK and REPORT carry the
/// stream's own receiver id), and the opener of the last stream id seen before its
/// stream opened, so a burst of a new stream's first datagrams derives its key once.
/// One per receive thread (it caches), made from the shared ``secret``.
public final class ReceiverKeyring: @unchecked Sendable {
    public let secret: StreamSecret
    /// The origin of this receiver's REPORTs (random, never 0).
    public let receiverID: UInt64
    private var candidate: (streamID: UInt64, opener: DatagramAuthenticator)?

    public init(secret: StreamSecret, receiverID: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        self.secret = secret
        self.receiverID = receiverID
    }

    /// The opener of the source key of stream `streamID`: derived once per new stream id in
    /// a row (a forger cycling stream ids makes each of its datagrams cost an HKDF; they
    /// never open a stream).
    func opener(for streamID: UInt64) -> DatagramAuthenticator {
        if let candidate, candidate.streamID == streamID { return candidate.opener }
        let opener = DatagramAuthenticator(key: secret.sourceKey(streamID: streamID), sealing: false)
        candidate = (streamID, opener)
        return opener
    }
}

/// A keyed stream's own state: its source key's opener and the replay window of its packet
/// numbers.
public struct KeyedStreamAuth: Sendable {
    let opener: DatagramAuthenticator
    var window = ReplayWindow()
}
