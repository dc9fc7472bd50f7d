import Foundation

/// Files of the repository the tests read: found from this source file's place
/// (`<root>/Tests/TestSupport/Repository.swift`, three levels below the root).
package enum Repository {
    /// The repository root.
    package static var root: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent() // TestSupport
            .deletingLastPathComponent() // Tests
            .deletingLastPathComponent() // repo root
    }

    /// The golden vectors (Protocol/vectors, written by independent Python implementations);
    /// `ZC_VECTORS_DIR` overrides the place.
    package static var vectors: URL {
        if let dir = ProcessInfo.processInfo.environment["ZC_VECTORS_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        return root.appendingPathComponent("Protocol/vectors")
    }

    /// One vector file, e.g. `vector("frames.json")`.
    package static func vector(_ name: String) -> URL {
        vectors.appendingPathComponent(name)
    }
}
