#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// A joinable OS thread running one closure: one thread per ring, run to
/// completion. Plain pthreads, no executor, no async: the hot loop owns its core.
public final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: @Sendable () -> Void
    private let cpu: Int?

    /// Starts `body` at once, pinned to `cpu` when given.
    public init(cpu: Int? = nil, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        self.body = body
        self.cpu = cpu
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let worker = Unmanaged<WorkerThread>.fromOpaque(raw!).takeRetainedValue()
            if let cpu = worker.cpu { _ = zc_pin_current_thread(Int32(cpu)) }
            worker.body()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<WorkerThread>.fromOpaque(context).release()
            throw SystemError(call: "pthread_create", errno: rc)
        }
    }

    private var joined = false

    /// Waits for the thread to finish. Joining again returns at once (a pthread may be
    /// joined only once).
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    /// CPUs this process may run on.
    public static var availableCPUs: Int { Int(zc_available_cpus()) }
}
