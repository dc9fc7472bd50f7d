#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `mmap(2)`/`munmap(2)`. Neither returns EINTR, so the EINTR policy has nothing to do
/// here; the failure still becomes a ``SystemError`` in one place.
package enum MemoryMap {
    /// Maps `bytes` of `fd` at `offset` (`fd` -1 with `MAP_ANONYMOUS`).
    ///
    /// - Throws: ``SystemError`` from `mmap(2)`, e.g. `ENOMEM`.
    @inline(__always)
    package static func map(bytes: Int, protection: Int32 = PROT_READ | PROT_WRITE, flags: Int32,
                           fd: Int32 = -1, offset: Int64 = 0,
                           call: @autoclosure () -> String = "mmap") throws(SystemError) -> UnsafeMutableRawPointer {
        let memory = mmap(nil, bytes, protection, flags, fd, off_t(offset))
        guard let memory, memory != MAP_FAILED else { throw SystemError(call: call()) }
        return memory
    }

    /// Private anonymous memory of `bytes`, zero-filled (`MAP_PRIVATE | MAP_ANONYMOUS` and `extraFlags`).
    @inline(__always)
    package static func anonymous(bytes: Int, extraFlags: Int32 = 0,
                                 call: @autoclosure () -> String = "mmap") throws(SystemError) -> UnsafeMutableRawPointer {
        try map(bytes: bytes, flags: MAP_PRIVATE | MAP_ANONYMOUS | extraFlags, call: call())
    }

    /// Unmaps what ``map(bytes:protection:flags:fd:offset:call:)`` returned. It fails only
    /// for a bad range, a caller's bug: the errno is returned (0 on success), not thrown.
    @discardableResult @inline(__always)
    package static func unmap(_ memory: UnsafeMutableRawPointer, bytes: Int) -> Int32 {
        munmap(memory, bytes) == 0 ? 0 : Glibc.errno
    }
}

/// A mapping owned by exactly one value: unmapped once, in `deinit`.
package struct MappedMemory: ~Copyable {
    /// The first byte; valid for the value's lifetime.
    package let base: UnsafeMutableRawPointer
    /// The mapping's length in bytes.
    package let count: Int

    /// Maps `bytes` as ``MemoryMap/map(bytes:protection:flags:fd:offset:call:)`` does.
    package init(bytes: Int, protection: Int32 = PROT_READ | PROT_WRITE, flags: Int32,
                fd: Int32 = -1, offset: Int64 = 0, call: @autoclosure () -> String = "mmap") throws(SystemError) {
        base = try MemoryMap.map(bytes: bytes, protection: protection, flags: flags, fd: fd, offset: offset, call: call())
        count = bytes
    }

    deinit { MemoryMap.unmap(base, bytes: count) }

    /// The mapping as a buffer.
    package var buffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count) }
}
