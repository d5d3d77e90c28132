import CTData
import Foundation

/// Text files that dsan writes for people and other programs (CSV, JSON): written whole and
/// atomically, so a reader never sees half a file; errors name the file.
public enum TextFile {
    /// Writes `text` as UTF-8 to `path` atomically.
    public static func write(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw DataError(file: path, "cannot write: \((error as NSError).localizedDescription)")
        }
    }

    /// Creates the directory that will hold `path` (and its parents) when it does not exist.
    public static func createParent(of path: String) throws {
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
    }
}
