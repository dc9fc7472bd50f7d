import Foundation
import TestSupport
import XCTest

/// The release archive (Tools/package) installs anywhere: extracted into a temp dir and
/// run with the toolchain off PATH and off the library path, its binaries need no Swift
/// runtime library and carry a stream whole.
final class PackagePairTests: XCTestCase {
    static var repository: URL {
        Repository.root
    }

    /// dist/'s release archive extracted into a fresh temp dir: its top folder, the version, and
    /// the temp dir to remove. Skips (saying so) when Tools/package has not built it.
    static func extractedArchive(for test: String) throws -> (top: URL, version: String, dir: URL) {
        let root = repository
        let version = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let name = "zcstream-\(version)-linux-\(shell("uname -m").output.trimmingCharacters(in: .whitespacesAndNewlines))"
        let archive = root.appendingPathComponent("dist/\(name).tar.gz")
        guard FileManager.default.fileExists(atPath: archive.path) else {
            print("\(test): skipped: \(archive.path) is absent (run Tools/package, or Tools/test with ZC_PACKAGE=1)")
            throw XCTSkip("\(archive.lastPathComponent) is absent: run Tools/package")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zc-pkg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let untar = shell("tar -C '\(dir.path)' -xzf '\(archive.path)'")
        XCTAssertEqual(untar.status, 0, untar.output)
        return (dir.appendingPathComponent(name), version, dir)
    }

    func testArchiveRunsWithoutTheToolchain() throws {
        let (top, version, dir) = try Self.extractedArchive(for: "PackagePairTests")
        defer { try? FileManager.default.removeItem(at: dir) }
        for file in ["bin/zc-send", "bin/zc-recv", "share/man/man1/zc-send.1", "share/man/man1/zc-recv.1",
                     "share/bash-completion/completions/zc-recv", "share/zsh/site-functions/_zc-recv",
                     "share/fish/vendor_completions.d/zc-recv.fish", "share/wireshark/zcstream.lua",
                     "share/zcstream/zc-recv.service", "VERSION"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: top.appendingPathComponent(file).path), "\(file) missing from the archive")
        }
        let bin = top.appendingPathComponent("bin").path

        // A clean environment: system directories only, no toolchain, no LD_LIBRARY_PATH.
        let env = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp"
        for tool in ["zc-send", "zc-recv"] {
            let ldd = shell("\(env) ldd '\(bin)/\(tool)'")
            XCTAssertEqual(ldd.status, 0, ldd.output)
            XCTAssertFalse(ldd.output.contains("libswift"), "\(tool) needs a Swift runtime library:\n\(ldd.output)")
            XCTAssertFalse(ldd.output.contains("libFoundation") || ldd.output.contains("libdispatch"), "\(tool) needs a toolchain library:\n\(ldd.output)")
            XCTAssertFalse(ldd.output.contains("not found"), ldd.output)
            XCTAssertEqual(shell("\(env) '\(bin)/\(tool)' --version").output.trimmingCharacters(in: .whitespacesAndNewlines), version)
        }

        // A pair from the archive, in the clean environment.
        let log = dir.appendingPathComponent("recv.err").path
        let out = dir.appendingPathComponent("recv.json").path
        let count = 200_000
        let pair = shell("""
        \(env) '\(bin)/zc-recv' 127.0.0.1:0 --streams 1 --json --interval 0 > '\(out)' 2> '\(log)' &
        rx=$!
        for i in $(seq 100); do grep -q 'listening on' '\(log)' && break; sleep 0.05; done
        port=$(sed -n 's/.*listening on 127.0.0.1:\\([0-9]*\\).*/\\1/p' '\(log)')
        \(env) '\(bin)/zc-send' 127.0.0.1:$port --count \(count) --interval 0 > /dev/null || exit 3
        wait $rx
        """)
        XCTAssertEqual(pair.status, 0, "pair from the archive: \(pair.output) \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let json = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out)))) as? [String: Any]
        XCTAssertEqual(u64(json, "unique"), UInt64(count))
        XCTAssertEqual(u64(json, "lost"), 0)
        XCTAssertEqual(u64(json, "corrupt"), 0)
        XCTAssertEqual(json?["version"] as? String, version)
    }
}
