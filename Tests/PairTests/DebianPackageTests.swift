import Foundation
import TestSupport
import XCTest

/// `Tools/package --deb` (run by `ZC_PACKAGE=1 Tools/test`): lintian finds no error; apt
/// installs it on this host; everything is where Debian looks for it; a pair runs from
/// /usr/bin; the unit's own command line stops on SIGTERM with a status the unit counts as
/// success; `apt-get purge` leaves nothing behind. Root only.
final class DebianPackageTests: XCTestCase {
    static let installed = [
        "/usr/bin/zc-send", "/usr/bin/zc-recv",
        "/usr/share/man/man1/zc-send.1.gz", "/usr/share/man/man1/zc-recv.1.gz",
        "/usr/share/bash-completion/completions/zc-send", "/usr/share/bash-completion/completions/zc-recv",
        "/usr/share/zsh/vendor-completions/_zc-send", "/usr/share/zsh/vendor-completions/_zc-recv",
        "/usr/share/fish/vendor_completions.d/zc-send.fish", "/usr/share/fish/vendor_completions.d/zc-recv.fish",
        "/lib/systemd/system/zc-recv.service", "/etc/default/zc-recv",
        "/usr/share/doc/zcstream/copyright",
    ]

    func testDebInstallsRunsAndPurgesCleanly() throws {
        guard isRoot else {
            print("DebianPackageTests: skipped: installing a package needs root")
            throw XCTSkip("installing a package needs root")
        }
        let root = PackagePairTests.repository
        let version = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let arch = shell("dpkg --print-architecture").output.trimmingCharacters(in: .whitespacesAndNewlines)
        let deb = root.appendingPathComponent("dist/zcstream_\(version)_\(arch).deb").path
        guard FileManager.default.fileExists(atPath: deb) else {
            print("DebianPackageTests: skipped: \(deb) is absent (run Tools/package --deb, or Tools/test with ZC_PACKAGE=1)")
            throw XCTSkip("the .deb is absent: run Tools/package --deb")
        }
        guard shell("dpkg-query -W -f='${Status}' zcstream 2>/dev/null").output.contains("installed") == false else {
            throw XCTSkip("a zcstream package is installed on this host already: not touching it")
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/lintian") {
            let lint = shell("lintian --fail-on error --suppress-tags-from-file /dev/null '\(deb)' 2>&1")
            XCTAssertEqual(lint.status, 0, "lintian reports errors:\n\(lint.output)")
            XCTAssertFalse(lint.output.contains("E: "), lint.output)
        } else {
            print("DebianPackageTests: lintian is not installed (Tools/bootstrap installs it): not linted")
        }

        let install = shell("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends '\(deb)' 2>&1")
        defer { _ = shell("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q zcstream 2>&1") }
        XCTAssertEqual(install.status, 0, install.output)
        for file in Self.installed {
            XCTAssertTrue(FileManager.default.fileExists(atPath: file), "\(file) not installed")
        }
        let lua = shell("dpkg -L zcstream | grep 'wireshark/plugins/zcstream.lua$'").output.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(lua.isEmpty, "no dissector in Wireshark's plugin folder")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") {
            XCTAssertTrue(shell("tshark -G protocols 2>/dev/null").output.contains("zcstream"), "tshark does not load the installed dissector")
        }
        XCTAssertEqual(shell("man -w zc-recv").output.trimmingCharacters(in: .whitespacesAndNewlines), "/usr/share/man/man1/zc-recv.1.gz")
        XCTAssertEqual(shell("env -i PATH=/usr/bin:/bin zc-send --version").output.trimmingCharacters(in: .whitespacesAndNewlines), version)

        // A pair from /usr/bin with a clean environment.
        let env = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp"
        let dir = NSTemporaryDirectory() + "zc-deb-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pair = shell("""
        \(env) zc-recv -p 0 -B 127.0.0.1 --streams 1 -J -i 0 > \(dir)/recv.json 2> \(dir)/recv.err &
        rx=$!
        for i in $(seq 100); do grep -q 'listening on' \(dir)/recv.err && break; sleep 0.05; done
        port=$(sed -n 's/.*listening on 127.0.0.1:\\([0-9]*\\).*/\\1/p' \(dir)/recv.err)
        \(env) zc-send -c 127.0.0.1 -p $port -u -k 100000 -b 2G -i 0 -J > \(dir)/send.json || exit 3
        wait $rx
        """)
        XCTAssertEqual(pair.status, 0, pair.output + ((try? String(contentsOfFile: dir + "/recv.err", encoding: .utf8)) ?? ""))
        let received = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/recv.json")))) as? [String: Any]
        XCTAssertEqual(u64(received, "unique"), 100_000)
        XCTAssertEqual(u64(received, "lost"), 0)

        // The unit's command line (its settings from /etc/default/zc-recv, the port moved off
        // 9000/9464 for the test) stopped as `systemctl stop` stops it: SIGTERM. The status
        // must be one the unit calls success.
        let unit = try String(contentsOfFile: "/lib/systemd/system/zc-recv.service", encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/bin/zc-recv $ZC_RECV_ARGS"), unit)
        let success = Set([0] + (unit.split(separator: "\n").first { $0.hasPrefix("SuccessExitStatus=") }?
            .dropFirst("SuccessExitStatus=".count).split(separator: " ").compactMap { Int32($0) } ?? []))
        let serve = shell("""
        . /etc/default/zc-recv
        args=$(printf '%s' "$ZC_RECV_ARGS" | sed -e 's/0.0.0.0:9000/127.0.0.1:0/' -e 's/127.0.0.1:9464/127.0.0.1:0/')
        \(env) /usr/bin/zc-recv $args > \(dir)/server.out 2> \(dir)/server.err &
        rx=$!
        for i in $(seq 100); do grep -q 'listening on' \(dir)/server.err && break; sleep 0.05; done
        port=$(sed -n 's/.*listening on 127.0.0.1:\\([0-9]*\\).*/\\1/p' \(dir)/server.err)
        \(env) zc-send 127.0.0.1:$port -k 1000 -i 0 -J > /dev/null || exit 3
        sleep 0.5
        kill -TERM $rx
        wait $rx
        echo "status $?"
        """)
        let status = Int32(serve.output.components(separatedBy: "status ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        XCTAssertTrue(success.contains(status), "SIGTERM ended the unit's zc-recv with \(status), not in \(success): \(serve.output)")
        let served = (try? String(contentsOfFile: dir + "/server.out", encoding: .utf8)) ?? ""
        XCTAssertTrue(served.contains("\"stream_finished\""), "the server did not report the stream: \(served)")

        // Purge: every file gone, the conffile too.
        let purge = shell("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q zcstream 2>&1")
        XCTAssertEqual(purge.status, 0, purge.output)
        for file in Self.installed + [lua] where !file.isEmpty {
            XCTAssertFalse(FileManager.default.fileExists(atPath: file), "\(file) left after purge")
        }
    }
}
