import Foundation
@testable import NIfTI
import Tensor

/// Deterministic generator for the tests: dsan's own SplitMix64, with the draws these tests use.
typealias SeededRandom = SplitMix64

extension SplitMix64 {
    mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func unit() -> Double { uniform() }
}

/// A scratch folder removed at the end of the test.
final class ScratchDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-nifti-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

func fileBytes(_ path: String) -> [UInt8] { [UInt8](try! Data(contentsOf: URL(fileURLWithPath: path))) }

func writeBytes(_ bytes: [UInt8], _ path: String) { try! Data(bytes).write(to: URL(fileURLWithPath: path)) }

/// gzip-compresses through the module's own deflate sink.
func gzip(_ bytes: [UInt8], scratch: ScratchDir) -> [UInt8] {
    let path = scratch.path("gz-\(UUID().uuidString).gz")
    do {
        let sink = try FileSink(path: path, gzipLevel: 6)
        try bytes.withUnsafeBytes { try sink.write($0) }
        try sink.finish()
    } catch { fatalError("\(error)") }
    return fileBytes(path)
}

/// A NIfTI-1 single file built byte by byte, independently of the module's encoder, in either
/// byte order. Fields not set stay zero, as in a header from a minimal writer.
struct HandBuiltNIfTI {
    var bigEndian = false
    var dim: [Int16] = [3, 2, 3, 4, 1, 1, 1, 1]
    var datatype: Int16 = 4
    var bitpix: Int16 = 16
    var pixdim: [Float] = [1, 1, 1, 1, 0, 0, 0, 0]
    var voxOffset: Float = 352
    var sclSlope: Float = 0
    var sclInter: Float = 0
    var qformCode: Int16 = 0
    var sformCode: Int16 = 0
    var quatern: [Float] = [0, 0, 0]
    var qoffset: [Float] = [0, 0, 0]
    var srow: [[Float]] = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    var magic = "n+1"
    var sizeofHdr: Int32 = 348
    /// Raw voxel bytes, already in the file's byte order.
    var data: [UInt8] = []

    func bytes() -> [UInt8] {
        let dataStart = voxOffset.isFinite && voxOffset > 352 && voxOffset < 1e6 ? Int(voxOffset) : 352
        var out = [UInt8](repeating: 0, count: dataStart)
        func put<T: FixedWidthInteger>(_ v: T, _ o: Int) {
            let b = bigEndian ? v.bigEndian : v.littleEndian
            withUnsafeBytes(of: b) { for (i, x) in $0.enumerated() { out[o + i] = x } }
        }
        func putF(_ v: Float, _ o: Int) { put(v.bitPattern, o) }
        put(sizeofHdr, 0)
        for i in 0..<8 { put(dim[i], 40 + 2 * i) }
        put(datatype, 70)
        put(bitpix, 72)
        for i in 0..<8 { putF(pixdim[i], 76 + 4 * i) }
        putF(voxOffset, 108)
        putF(sclSlope, 112)
        putF(sclInter, 116)
        put(qformCode, 252)
        put(sformCode, 254)
        for i in 0..<3 { putF(quatern[i], 256 + 4 * i) }
        for i in 0..<3 { putF(qoffset[i], 268 + 4 * i) }
        for r in 0..<3 { for c in 0..<4 { putF(srow[r][c], 280 + 16 * r + 4 * c) } }
        for (i, c) in magic.utf8.prefix(4).enumerated() { out[344 + i] = c }
        return out + data
    }

    /// Encodes values in this header's byte order as the given integer type.
    mutating func setData<T: FixedWidthInteger>(_ values: [T]) {
        data = values.flatMap { v -> [UInt8] in
            withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian) { Array($0) }
        }
    }

    mutating func setData(_ values: [Float]) { setData(values.map { $0.bitPattern }) }
    mutating func setData(_ values: [Double]) { setData(values.map { $0.bitPattern }) }
}

/// The error a throwing expression throws, as NIfTIError.
func nifti<T>(_ body: () throws -> T) -> NIfTIError? {
    do { _ = try body(); return nil } catch let e as NIfTIError { return e } catch { return nil }
}
