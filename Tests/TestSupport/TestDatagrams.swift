import StreamProtocol

/// Sealed datagrams for the tests, one definition for every test file.
package enum TestDatagrams {
    /// A DATA|PATTERN datagram for (stream, seq) with `payload` bytes at `offset`
    /// (default: `seq * payload`), sent at `timestamp`.
    /// `reliable`: a reliable stream's version 3 DATA (SPEC §13.2); `repair` marks it a repair.
    package static func data(stream: UInt64, seq: UInt64, payload: Int = 100, offset: UInt64? = nil, timestamp: UInt64 = 1,
                              reliable: Bool = false, repair: Bool = false) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: DatagramHeader.size + payload)
        bytes.withUnsafeMutableBytes { buf in
            let offset = offset ?? seq * UInt64(payload)
            PayloadPattern.fill(buf.baseAddress! + DatagramHeader.size, count: payload, streamID: stream, offset: offset)
            let mode: DatagramFlags = reliable ? (repair ? [.reliable, .repair] : [.reliable]) : []
            Datagram.encode(DatagramHeader(flags: mode.union([.data, .pattern]), streamID: stream, sequence: seq, offset: offset,
                                           timestampNanoseconds: timestamp, payloadLength: UInt32(payload)), at: buf.baseAddress!)
        }
        return bytes
    }

    /// The END of `stream` with its totals.
    package static func end(stream: UInt64, datagrams: UInt64, bytes: UInt64, reliable: Bool = false) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: DatagramHeader.size + EndOfStream.payloadSize)
        out.withUnsafeMutableBytes { buf in
            EndOfStream(datagrams: datagrams, bytes: bytes).write(to: buf.baseAddress! + DatagramHeader.size)
            Datagram.encode(DatagramHeader(flags: reliable ? [.end, .reliable] : [.end], streamID: stream, sequence: datagrams, offset: bytes,
                                           timestampNanoseconds: 1, payloadLength: 16), at: buf.baseAddress!)
        }
        return out
    }
}
