// swift-tools-version: 6.0
// The fuzz target, a package of its own so the root package's `swift build` and
// `swift test` never see it. Tools/fuzz builds it with libFuzzer and ASan:
//   swift build --package-path Fuzz --scratch-path .build-fuzz -c release \
//       --sanitize fuzzer --sanitize address --product DatagramFuzzer
import Foundation
import PackageDescription

// The root package is a path dependency; its identity is its directory's name.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "zcstream-fuzz",
    dependencies: [.package(path: root.path)],
    targets: [
        .executableTarget(
            name: "DatagramFuzzer",
            dependencies: [.product(name: "ZCStream", package: root.lastPathComponent)],
            path: "DatagramFuzzer"
        ),
    ],
    swiftLanguageModes: [.v6]
)
