import ZCSystem

/// When a send engine's run loop stops taking new data: one decision shared by
/// every engine, checked once per loop turn (never per datagram). In order: a stop
/// signal, a failed send under `--on-error stop` (or an engine that cannot go on),
/// the end of the stream (count, bytes, end of input), the `--duration` deadline.
package struct ProductionLimits {
    let deadline: UInt64?
    let stopOnError: Bool

    package init(_ c: SenderConfiguration, limit: StreamLimit, start: UInt64) {
        deadline = limit.durationNanoseconds.map { start + $0 }
        stopOnError = c.onError == .stop
    }

    /// Why to stop producing now, or nil to go on. `engineFailed`: the engine itself
    /// can send no more (e.g. the packet ring rejected a frame).
    @inline(__always)
    package func reasonToStop(now: UInt64, writer: borrowing DatagramWriter, stats: borrowing SenderStatistics,
                      engineFailed: Bool = false) -> StopReason? {
        if StopFlag.isSet { return .signal }
        if (stopOnError && stats.errorCount > 0) || engineFailed { return .error }
        if writer.isExhausted { return .limit }
        if let deadline, now >= deadline { return .limit }
        return nil
    }
}
