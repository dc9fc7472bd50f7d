#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// Why `--output` cannot be written, found before the first datagram: a receiver must not
/// validate a whole stream (and tell its sender "ok") into a file it was never able to write.
public struct OutputPathError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The path (or directory) that was checked.
    public var path: String
    /// What is wrong, in words.
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

extension OutputTarget {
    /// O_TMPFILE (__O_TMPFILE | O_DIRECTORY, the same on every Linux architecture but
    /// alpha/parisc/sparc); Glibc's Swift overlay does not export it.
    static let openTemporaryFile: Int32 = 0o20_200_000

    /// Kernel pseudo-filesystems (proc, sysfs, cgroup, debugfs, ...): root may open their
    /// files for writing, but they do not keep a stream's bytes.
    static let pseudoFilesystems: [Int: String] = [
        0x9fa0: "proc", 0x6265_6572: "sysfs", 0x27e0eb: "cgroup", 0x6367_7270: "cgroup2", 0x6462_6720: "debugfs",
        0x7472_6163: "tracefs", 0x7363_6673: "securityfs", 0xcafe_4a11: "bpf", 0x6265_6570: "configfs",
        0xde5e_81e4: "efivarfs", 0x6165_676c: "pstore",
    ]

    static func refusePseudoFilesystem(_ path: String) throws(OutputPathError) {
        let type = zc_filesystem_type(path)
        guard type >= 0, let name = pseudoFilesystems[type] else { return }
        throw OutputPathError(path: path, reason: "is on \(name), a kernel pseudo-filesystem that keeps no data")
    }

    /// Checks, before anything arrives, that this target's files can be created or written:
    /// the first stream's file itself when it is `PATH` (an existing one must be a regular
    /// file or a device this process may open for writing), else the directory the
    /// `PATH.<id>` files go to (it must exist, be a directory and take a new file:
    /// permissions and read-only mounts are found by creating an unnamed O_TMPFILE there).
    /// Nothing is created, truncated or left behind. Stdout is not checked.
    package func checkWritable() throws(OutputPathError) {
        guard case .file(let path) = destination else { return }
        var st = stat()
        if !suffixEveryStream && stat(path, &st) == 0 {
            let kind = st.st_mode & S_IFMT
            if kind == S_IFDIR { throw OutputPathError(path: path, reason: "is a directory; give a file name") }
            guard kind == S_IFREG || kind == S_IFCHR || kind == S_IFBLK else {
                throw OutputPathError(path: path, reason: "is not a regular file")
            }
            try Self.refusePseudoFilesystem(path)
            let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw OutputPathError(path: path, reason: "cannot be opened for writing (\(SystemError.describe(errno)))") }
            Glibc.close(fd)
            return
        }
        let directory = Self.directory(of: path)
        guard stat(directory, &st) == 0 else {
            throw OutputPathError(path: directory, reason: "the output directory does not exist (\(SystemError.describe(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw OutputPathError(path: directory, reason: "is not a directory") }
        try Self.refusePseudoFilesystem(directory)
        let fd = Glibc.open(directory, O_WRONLY | O_CLOEXEC | Self.openTemporaryFile, 0o600)
        if fd >= 0 { Glibc.close(fd); return }
        let e = errno
        // A filesystem without O_TMPFILE: ask the kernel about write permission and the mount.
        if e == EOPNOTSUPP || e == EISDIR || e == EINVAL {
            if access(directory, W_OK | X_OK) != 0 {
                throw OutputPathError(path: directory, reason: "no permission to create files (\(SystemError.describe(errno)))")
            }
            var fs = statvfs()
            if statvfs(directory, &fs) == 0 && fs.f_flag & UInt(ST_RDONLY) != 0 {
                throw OutputPathError(path: directory, reason: "is on a read-only filesystem")
            }
            return
        }
        throw OutputPathError(path: directory, reason: "cannot create files there (\(SystemError.describe(e)))")
    }
}
