#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one EINTR policy of zcstream, and the one place where a failed call's errno
/// becomes a ``SystemError``.
///
/// **Policy:** a call interrupted by a signal (EINTR) is run again, unless a stop was
/// requested (``StopFlag/isSet``); then the interruption surfaces as a ``SystemError``
/// with errno EINTR (``SystemError/isStopInterruption``) so the caller winds down.
///
/// The stop handlers are installed without SA_RESTART, so a SIGINT/SIGTERM wakes a
/// blocked call at once: it sets the flag first, the call then returns EINTR, and the
/// policy hands that back instead of blocking again. Any other signal is retried.
///
/// Every libc wrapper in ``FileCalls``, ``SocketCalls`` and ``MemoryMap`` goes through
/// ``Interruption/attempt(stopRequested:_:)``; calls that report `-errno` as their
/// result (liburing) go through ``Interruption/attemptReturningErrno(stopRequested:_:)``.
/// Nothing here allocates unless an error is actually thrown: call names are autoclosures.
package enum Interruption {
    /// The policy as a decision: after EINTR, run the call again? Yes unless a stop was requested.
    @inline(__always)
    package static func shouldRetry(afterInterruptWithStopRequested stopRequested: Bool) -> Bool {
        !stopRequested
    }

    /// Runs `body` (a libc call that returns -1 and sets errno on failure) under the policy.
    ///
    /// - Parameters:
    ///   - stopRequested: Whether a stop was requested; ``StopFlag/isSet`` unless a test injects one.
    ///   - body: The call; it runs again after EINTR when no stop was requested.
    /// - Returns: The call's result and 0, or -1 and the failing errno (EINTR only when a
    ///   stop was requested).
    @inline(__always)
    package static func attempt<T: BinaryInteger>(
        stopRequested: () -> Bool = { StopFlag.isSet }, _ body: () -> T
    ) -> (result: T, errno: Int32) {
        while true {
            let result = body()
            if result != -1 { return (result, 0) }
            let code = Glibc.errno
            if code == EINTR && shouldRetry(afterInterruptWithStopRequested: stopRequested()) { continue }
            return (result, code)
        }
    }

    /// Runs `body`, a call that returns `-errno` on failure (liburing), under the policy.
    ///
    /// - Returns: The call's result (≥ 0) or `-errno`; `-EINTR` only when a stop was requested.
    @inline(__always)
    package static func attemptReturningErrno(
        stopRequested: () -> Bool = { StopFlag.isSet }, _ body: () -> Int32
    ) -> Int32 {
        while true {
            let rc = body()
            if rc == -EINTR && shouldRetry(afterInterruptWithStopRequested: stopRequested()) { continue }
            return rc
        }
    }
}

/// Runs a libc call that returns -1 and sets errno on failure under the one EINTR policy
/// (``Interruption``) and turns its failure into a ``SystemError`` named `call`.
///
/// - Parameters:
///   - call: The call's name for the error, built only when one is thrown.
///   - stopRequested: Whether a stop was requested; ``StopFlag/isSet`` unless a test injects one.
///   - body: The call.
/// - Throws: ``SystemError``; errno EINTR means interrupted by a stop (``SystemError/isStopInterruption``).
@inline(__always)
package func systemCall<T: BinaryInteger>(
    _ call: @autoclosure () -> String, stopRequested: () -> Bool = { StopFlag.isSet }, _ body: () -> T
) throws(SystemError) -> T {
    let (result, code) = Interruption.attempt(stopRequested: stopRequested, body)
    if code != 0 { throw SystemError(call: call(), errno: code) }
    return result
}

/// ``systemCall(_:stopRequested:_:)`` for a call on a non-blocking descriptor (or with
/// MSG_DONTWAIT, or a receive timeout): EAGAIN/EWOULDBLOCK is the outcome `nil`, not an error.
@inline(__always)
package func nonBlockingSystemCall<T: BinaryInteger>(
    _ call: @autoclosure () -> String, stopRequested: () -> Bool = { StopFlag.isSet }, _ body: () -> T
) throws(SystemError) -> T? {
    let (result, code) = Interruption.attempt(stopRequested: stopRequested, body)
    if code == 0 { return result }
    if code == EAGAIN || code == EWOULDBLOCK { return nil }
    throw SystemError(call: call(), errno: code)
}

extension SystemError {
    /// True when the call was interrupted by a signal while a stop was requested: under the
    /// one EINTR policy (``Interruption``) this is the only way EINTR surfaces, and it asks
    /// the caller to wind down rather than report a failure.
    package var isStopInterruption: Bool { errno == EINTR }
}
