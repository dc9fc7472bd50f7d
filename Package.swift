// swift-tools-version: 6.0
import PackageDescription

// Linux only (io_uring, AF_PACKET, UDP GSO/GRO): no Apple platform is claimed.
// No unsafe build flags anywhere, so another package can depend on this one by
// version (PackageDependencyTests builds such a package against a tagged clone).

let package = Package(
    name: "zcstream",
    products: [
        .library(name: "ZCStream", targets: ["ZCStream"]),
        .executable(name: "zc-send", targets: ["zc-send"]),
        .executable(name: "zc-recv", targets: ["zc-recv"]),
        .executable(name: "zc-report", targets: ["zc-report"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Documentation only: `swift package generate-documentation --target Sender`.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // --metrics: Prometheus registry and text exposition (swift-prometheus), served by
        // SwiftNIO's HTTP/1.1 server (NIOPosix + NIOHTTP1: no Foundation, so the binaries need
        // neither libcurl nor Foundation's ICU data; BinaryFootprintTests checks it).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C: what Swift cannot reach of Linux's socket/thread/signal APIs (CMSG_* and CPU_SET
        // macros, sendmmsg/recvmmsg, the stop flag, the AF_PACKET ring's status word). No liburing.
        .target(name: "CLinux"),
        // C: liburing's static-inline helpers and the kernel ABI's unions; links liburing.
        .target(
            name: "CURing",
            dependencies: ["CLinux"],
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // C: the CRC32C kernels (crc32 instruction, PCLMULQDQ/VPCLMULQDQ folding, chosen at
        // run time) with the payload pattern fused in. No liburing, no compiler flags:
        // each kernel names its instruction set with __attribute__((target)).
        .target(name: "CCRC32C"),
        // OpenSSL's libcrypto for keyed streams (SPEC §14): AES-256-GCM (GMAC for the tag) and
        // HKDF. A system library (Debian libssl-dev, installed by Tools/bootstrap): no build cost.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "ZCSystem", dependencies: ["CLinux"]),
        .target(name: "URing", dependencies: ["CURing", "ZCSystem"]),
        .target(name: "StreamProtocol", dependencies: ["CCRC32C", "COpenSSL"]),
        .target(name: "Sender", dependencies: ["CLinux", "CURing", "ZCSystem", "URing", "StreamProtocol"]),
        .target(name: "Receiver", dependencies: ["CLinux", "CURing", "ZCSystem", "URing", "StreamProtocol", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        // The library in one import: re-exports the modules below.
        .target(name: "ZCStream", dependencies: ["Sender", "Receiver", "StreamProtocol", "ZCSystem"]),
        // What both CLIs share: units, JSON, the report envelope, and the options declared once.
        .target(name: "CLISupport", dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Prometheus exposition for both CLIs: registry, monotone counters, the /metrics listener.
        .target(
            name: "MetricsExport",
            dependencies: ["CLISupport", "ZCSystem", .product(name: "Prometheus", package: "swift-prometheus"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio")]
        ),
        .executableTarget(
            name: "zc-send",
            dependencies: ["Sender", "StreamProtocol", "ZCSystem", "CLISupport", "MetricsExport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "zc-recv",
            dependencies: ["Receiver", "StreamProtocol", "ZCSystem", "CLISupport", "MetricsExport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // A --json-stream run as one self-contained HTML page with SVG charts.
        .executableTarget(
            name: "zc-report",
            dependencies: ["CLISupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Examples: small programs on the library's public API (run by the test suite).
        // They depend on the library product's one module, as a user's package would.
        .executableTarget(name: "daq-producer", dependencies: ["ZCStream"], path: "Examples/DAQProducer"),
        .executableTarget(name: "validated-sink", dependencies: ["ZCStream"], path: "Examples/ValidatedSink"),
        // The helpers more than one test target uses (golden-vector and repository paths, hex,
        // SplitMix64, shell, sealed test datagrams). A plain target in no product: only tests use it.
        .target(name: "TestSupport", dependencies: ["StreamProtocol"], path: "Tests/TestSupport"),
        .testTarget(name: "StreamProtocolTests", dependencies: ["StreamProtocol", "TestSupport"]),
        .testTarget(name: "ZCSystemTests", dependencies: ["ZCSystem"]),
        .testTarget(name: "URingTests", dependencies: ["URing", "ZCSystem"]),
        .testTarget(name: "SenderTests", dependencies: ["Sender", "Receiver", "StreamProtocol", "ZCSystem", "TestSupport"]),
        .testTarget(name: "ReceiverTests", dependencies: ["Receiver", "StreamProtocol", "ZCSystem", "TestSupport"]),
        .testTarget(name: "CLISupportTests", dependencies: ["CLISupport", "TestSupport"]),
        .testTarget(name: "MetricsExportTests", dependencies: ["MetricsExport", "TestSupport"]),
        .testTarget(name: "LibraryTests", dependencies: ["ZCStream"]),
        .testTarget(name: "PairTests", dependencies: ["zc-send", "zc-recv", "zc-report", "daq-producer", "validated-sink", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
