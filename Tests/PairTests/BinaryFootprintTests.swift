import Foundation
import TestSupport
import XCTest

/// The binaries stay lean: the metrics listener is SwiftNIO's (no Foundation networking), so
/// `ldd` lists no libcurl, Kerberos, LDAP or FoundationNetworking, and the release archive's
/// static binaries need only the C library's own libraries (liburing, OpenSSL's libcrypto and the
/// C++ runtime at most)
/// and stay under 25 MB.
final class BinaryFootprintTests: XCTestCase {
    /// What a zcstream binary may need besides the Swift toolchain's own runtime libraries.
    /// (libresolv: glibc's own too; the AddressSanitizer runtime of `Tools/test --sanitize address` links it.)
    static let allowed = ["linux-vdso.so", "ld-linux", "libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so",
                          "libutil.so", "libresolv.so", "liburing.so", "libstdc++.so", "libgcc_s.so",
                          // OpenSSL's libcrypto: AES-256-GCM and HKDF for keyed streams (SPEC §14).
                          "libcrypto.so"]
    /// What Foundation networking drags in: never.
    static let forbidden = ["libcurl", "libFoundationNetworking", "libFoundation.so", "libFoundationInternationalization",
                            "lib_FoundationICU", "libxml2", "libkrb5", "libgssapi", "libldap", "libssl", "libnghttp", "libssh"]
    /// The largest a stripped release binary may be.
    static let maxBytes = 25 * 1_000_000

    /// The libraries `ldd` lists for `binary`, by file name.
    private func libraries(_ binary: String) throws -> [String] {
        let ldd = shell("env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ldd '\(binary)'")
        XCTAssertEqual(ldd.status, 0, ldd.output)
        XCTAssertFalse(ldd.output.contains("not found"), ldd.output)
        return ldd.output.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first.map { String($0.trimmingCharacters(in: .whitespaces).split(separator: "/").last ?? "") }
        }.filter { !$0.isEmpty }
    }

    private func assertNoForbidden(_ libs: [String], _ name: String) {
        for lib in libs {
            XCTAssertFalse(Self.forbidden.contains { lib.hasPrefix($0) }, "\(name) links \(lib): \(libs)")
        }
    }

    /// The binaries the tests drive (dynamic Swift runtime): Swift's runtime libraries, the C
    /// library's, liburing; nothing of Foundation networking.
    func testBuiltBinariesLinkNoFoundationNetworking() throws {
        for binary in [Binaries.send, Binaries.recv] {
            let libs = try libraries(binary)
            assertNoForbidden(libs, binary)
            let outside = libs.filter { lib in
                !Self.allowed.contains { lib.hasPrefix($0) } && !lib.hasPrefix("libswift") && !lib.hasPrefix("libdispatch")
                    && !lib.hasPrefix("libBlocksRuntime") && !lib.hasPrefix("libFoundationEssentials") && !lib.hasPrefix("lib_FoundationCollections")
            }
            XCTAssertEqual(outside, [], "\(binary) links libraries outside the C library and the Swift runtime")
        }
    }

    /// The release archive (Tools/package, static Swift runtime): the C library's own libraries
    /// only, and each binary at most 25 MB.
    func testReleaseArchiveBinariesNeedOnlyTheCLibrary() throws {
        let (top, _, dir) = try PackagePairTests.extractedArchive(for: "BinaryFootprintTests")
        defer { try? FileManager.default.removeItem(at: dir) }
        for tool in ["zc-send", "zc-recv"] {
            let binary = top.appendingPathComponent("bin/\(tool)").path
            let libs = try libraries(binary)
            assertNoForbidden(libs, tool)
            XCTAssertEqual(libs.filter { lib in !Self.allowed.contains { lib.hasPrefix($0) } }, [],
                           "\(tool) from the archive links more than the C library's own libraries")
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: binary)[.size] as? NSNumber).intValue
            XCTAssertLessThanOrEqual(size, Self.maxBytes, "\(tool) is \(size) bytes")
            print("BinaryFootprintTests: \(tool) \(size) bytes, needs \(libs.joined(separator: " "))")
        }
    }
}
