import Foundation
import TestSupport
import XCTest

/// The man pages (Tools/packaging/manpage, from the binaries' own help) and the shell
/// completions, as Tools/package ships them: no groff/mdoc warning, a SYNOPSIS with the real
/// command lines, every exit status the CLI's code can return, value completion.
final class ManPageTests: XCTestCase {
    /// ExitStatus members (CLISupport) and the statuses they stand for.
    static let statuses: [String: [Int]] = ["ok": [0], "validationFailed": [1], "failure": [2], "outputIncomplete": [3],
                                            "noVerdict": [4], "usage": [64], "cannotCreate": [73], "noPermission": [77],
                                            "signal": [130, 143]]

    private func page(_ tool: String) throws -> (source: String, rendered: String, warnings: String) {
        let binary = tool == "zc-send" ? Binaries.send : Binaries.recv
        let file = NSTemporaryDirectory() + "\(tool)-\(getpid()).1"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let generate = shell("'\(PackagePairTests.repository.path)/Tools/packaging/manpage' '\(binary)' > '\(file)'")
        XCTAssertEqual(generate.status, 0, generate.output)
        let source = try String(contentsOfFile: file, encoding: .utf8)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/man") else {
            throw XCTSkip("man is not installed (Tools/bootstrap installs man-db)")
        }
        let warnings = shell("man -l --warnings -E UTF-8 '\(file)' 2>&1 >/dev/null").output
        let rendered = shell("MANWIDTH=200 man -l -E UTF-8 '\(file)' 2>/dev/null | col -b").output
        return (source, rendered, warnings)
    }

    /// The codes one CLI's sources return: every ExitStatus member they use, and 64 (bad usage
    /// through swift-argument-parser's ValidationError).
    private func codes(usedIn tool: String) throws -> Set<Int> {
        let dir = PackagePairTests.repository.appendingPathComponent("Sources/\(tool)")
        var used: Set<Int> = [0, 64]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".swift") {
            let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            for (member, values) in Self.statuses where text.contains("ExitStatus.\(member)") { used.formUnion(values) }
        }
        return used
    }

    func testManPagesHaveNoWarningsATrueSynopsisAndEveryExitStatus() throws {
        for tool in ["zc-send", "zc-recv"] {
            let (source, rendered, warnings) = try page(tool)
            XCTAssertEqual(warnings, "", "\(tool): man --warnings")
            XCTAssertFalse(rendered.contains("subcommand"), "\(tool): \(rendered.prefix(800))")
            let synopsis = rendered.components(separatedBy: "SYNOPSIS")[1].components(separatedBy: "DESCRIPTION")[0]
            XCTAssertTrue(synopsis.contains(tool == "zc-send" ? "-c HOST -p PORT" : "-p PORT [-B HOST]"), "\(tool): \(synopsis)")
            XCTAssertTrue(synopsis.contains("[-J | --json-stream]"), "\(tool): \(synopsis)")
            XCTAssertTrue(rendered.contains("§"), "\(tool): the § of 'SPEC §12' is kept")
            let exit = try XCTUnwrap(rendered.components(separatedBy: "EXIT STATUS").dropFirst().last?
                .components(separatedBy: "\nEXAMPLES").first, "\(tool): no EXIT STATUS section")
            let listed = Set(exit.split(separator: "\n").compactMap { line -> [Int]? in
                let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                let numbers = words.prefix(2).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: ",")) }.compactMap { Int($0) }
                return numbers.isEmpty ? nil : numbers
            }.flatMap { $0 })
            let used = try codes(usedIn: tool)
            XCTAssertTrue(used.isSubset(of: listed), "\(tool): EXIT STATUS lists \(listed.sorted()), the code returns \(used.sorted())")
            XCTAssertTrue(source.contains(".Sh EXIT STATUS") && source.contains(".Sh OPTIONS"), tool)
        }
    }

    /// Values complete: engines, GSO/GRO settings, files for --source/--output, interfaces.
    func testCompletionsOfferValues() throws {
        let interfaces = shell("ls /sys/class/net").output.split(separator: "\n").map(String.init)
        XCTAssertTrue(interfaces.contains("lo"))
        for shellName in ["bash", "zsh", "fish"] {
            let send = shell("'\(Binaries.send)' --generate-completion-script \(shellName)").output
            let recv = shell("'\(Binaries.recv)' --generate-completion-script \(shellName)").output
            for engine in ["uring-zc", "sendmmsg", "packet-ring"] { XCTAssertTrue(send.contains(engine), "\(shellName): --engine \(engine)") }
            XCTAssertTrue(recv.contains("recvmmsg"), "\(shellName): zc-recv --engine")
            XCTAssertTrue(send.contains("ls /sys/class/net") && recv.contains("ls /sys/class/net"), "\(shellName): --interface")
            XCTAssertTrue(recv.contains("on") && recv.contains("off"), shellName)
            if shellName == "fish" {
                // Fish: the option's line ends in -rF (a required value, files).
                XCTAssertTrue(send.split(separator: "\n").contains { $0.contains("-l 'source'") && $0.hasSuffix("-rF") }, "fish: --source files")
                XCTAssertTrue(recv.split(separator: "\n").contains { $0.contains("-l 'output'") && $0.hasSuffix("-rF") }, "fish: --output files")
            } else {
                let files = shellName == "bash" ? "-f" : "_files"
                XCTAssertTrue(send.contains(files) && recv.contains(files), "\(shellName): --source/--output complete files (\(files))")
            }
        }
        // bash really offers them: complete `zc-send --engine ` and `zc-recv --gro `.
        let script = NSTemporaryDirectory() + "zc-send-completion-\(getpid()).bash"
        defer { try? FileManager.default.removeItem(atPath: script) }
        try shell("'\(Binaries.send)' --generate-completion-script bash").output.write(toFile: script, atomically: true, encoding: .utf8)
        let offered = shell("""
        bash -c 'source \(script); COMP_WORDS=(zc-send --engine ""); COMP_CWORD=2; COMP_LINE="zc-send --engine "; COMP_POINT=${#COMP_LINE}; \
        _zc-send zc-send "" --engine; printf "%s\\n" "${COMPREPLY[@]}"'
        """).output
        XCTAssertTrue(offered.contains("uring-zc") && offered.contains("packet-ring"), offered)
    }
}
