import Foundation
import Testing
@testable import HDF5
import CHDF5
import NumericalTesting

/// A fresh temporary directory per test.
func temporaryDirectory() throws -> URL { URL(fileURLWithPath: try Scratch.directory("hdf5")) }

@Suite struct HDF5RoundTripTests {
    @Test func everySupportedTypeRoundTripsChunkedAndCompressed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("round.h5").path
        let shape = [3, 4, 5, 6]
        let n = shape.reduce(1, *)
        let bytes = (0..<n).map { UInt8($0 % 251) }
        let floats = (0..<n).map { Float($0) * 0.25 - 7 }
        let longs: [Int64] = [Int64.min, -1, 0, 1, Int64.max]
        let ints: [Int32] = [Int32.min, 3, Int32.max]
        let doubles: [Double] = [0.1, -2.5e300]
        let names = ["case-001", "ünïcödé-π", "", String(repeating: "x", count: 300)]
        do {
            let file = try File(creating: path)
            try file.createDataset("image", type: .uint8, shape: shape, chunks: [1, 4, 5, 6], gzipLevel: 4).write(bytes)
            try file.createDataset("float", type: .float32, shape: shape, chunks: [1, 4, 5, 6], gzipLevel: 1).write(floats)
            try file.createDataset("long", type: .int64, shape: [5], chunks: [5], gzipLevel: 4).write(longs)
            try file.createDataset("int", type: .int32, shape: [3]).write(ints)
            try file.createDataset("double", type: .float64, shape: [2]).write(doubles)
            try file.createDataset("case_id", type: .string, shape: [4]).writeStrings(names)
            let group = try file.createGroup("optimizer")
            try group.createDataset("step", type: .int64, shape: [1]).write([Int64(17)])
            try file.setAttribute("format", "dsan-shard")
            try file.setAttribute("version", Int64(1))
            try file.setAttribute("spacing", [Float(0.7168), 0.7168, 1.25])
            try file.dataset("image").setAttribute("unit", "value / 255")
        }
        let file = try File(opening: path)
        let image = try file.dataset("image")
        #expect(image.shape == shape)
        #expect(image.elementType == .uint8)
        #expect(image.chunks == [1, 4, 5, 6])
        #expect(image.isCompressed)
        #expect(try image.read(as: UInt8.self) == bytes)
        #expect(try file.dataset("float").read(as: Float.self) == floats)
        #expect(try file.dataset("long").read(as: Int64.self) == longs)
        #expect(try file.dataset("int").read(as: Int32.self) == ints)
        #expect(try file.dataset("int").chunks == nil)
        #expect(try file.dataset("double").read(as: Double.self) == doubles)
        #expect(try file.dataset("case_id").readStrings() == names)
        #expect(try file.group("optimizer").dataset("step").read(as: Int64.self) == [17])
        #expect(try file.stringAttribute("format") == "dsan-shard")
        #expect(try file.attribute("version", as: Int64.self) == [1])
        #expect(try file.attribute("spacing", as: Float.self) == [0.7168, 0.7168, 1.25])
        #expect(try image.stringAttribute("unit") == "value / 255")
        #expect(try file.childNames() == ["case_id", "double", "float", "image", "int", "long", "optimizer"])
        #expect(try file.contains("image"))
        #expect(try !file.contains("lung"))
    }

    @Test func hyperslabReadsAndWritesOneCase() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("slab.h5").path
        let file = try File(creating: path)
        let d = try file.createDataset("image", type: .float32, shape: [4, 2, 3], chunks: [1, 2, 3], gzipLevel: 4)
        for c in 0..<4 {
            let values = (0..<6).map { Float(c * 10 + $0) }
            try values.withUnsafeBufferPointer { try d.write($0, start: [c, 0, 0], count: [1, 2, 3]) }
        }
        let third: [Float] = try d.read(start: [2, 0, 0], count: [1, 2, 3])
        #expect(third == [20, 21, 22, 23, 24, 25])
        let column: [Float] = try d.read(start: [0, 1, 2], count: [4, 1, 1])
        #expect(column == [5, 15, 25, 35])
        #expect(throws: HDF5Error.self) {
            let _: [Float] = try d.read(start: [3, 0, 0], count: [2, 2, 3])
        }
    }

    @Test func fixedLengthStringsAreReadToo() throws {
        // h5py writes numpy bytes arrays (dtype S…) as fixed-length strings.
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("fixed.h5").path
        let file = try File(creating: path)
        let type = H5Tcopy(dsan_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, 8)
        var dims: [hsize_t] = [2]
        let space = H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let d = H5Dcreate2(file.id, "ids", type, space, dsan_h5p_default(), dsan_h5p_default(), dsan_h5p_default())
        var raw: [CChar] = Array("abc\0\0\0\0\0defghijk".utf8.map { CChar(bitPattern: $0) })
        #expect(H5Dwrite(d, type, dsan_h5s_all(), dsan_h5s_all(), dsan_h5p_default(), &raw) >= 0)
        H5Dclose(d)
        #expect(try file.dataset("ids").readStrings() == ["abc", "defghijk"])
    }
}

@Suite struct HDF5ErrorTests {
    @Test func missingFileNamesTheFile() throws {
        let path = "/nonexistent/dsan/shard-000.h5"
        let error = #expect(throws: HDF5Error.self) { try File(opening: path) }
        #expect(error?.description == "/nonexistent/dsan/shard-000.h5: H5Fopen failed: no such file")
    }

    @Test func missingDatasetNamesFileAndDataset() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("shard.h5").path
        _ = try File(creating: path).createDataset("image", type: .uint8, shape: [1])
        let error = #expect(throws: HDF5Error.self) { try File(opening: path).dataset("lung") }
        let text = error?.description ?? ""
        #expect(text.contains(path) && text.contains("dataset `/lung`") && text.contains("no such dataset"), "\(text)")
    }

    @Test func wrongTypeNamesFileDatasetAndBothTypes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("shard.h5").path
        try File(creating: path).createDataset("lung", type: .float32, shape: [2]).write([Float(0), 1])
        let error = #expect(throws: HDF5Error.self) { try File(opening: path).dataset("lung").read(as: UInt8.self) }
        #expect(error?.description == "\(path): dataset `/lung`: H5Dread failed: stored type is float32, expected uint8")
        let strings = #expect(throws: HDF5Error.self) { try File(opening: path).dataset("lung").readStrings() }
        #expect(strings?.description.contains("expected string") == true)
    }

    @Test func corruptAndTruncatedFilesThrowWithHDF5sMessage() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.h5").path
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37) }).write(to: URL(fileURLWithPath: garbage))
        let e1 = #expect(throws: HDF5Error.self) { try File(opening: garbage) }
        #expect(e1?.description.hasPrefix("\(garbage): H5Fopen failed: ") == true)
        #expect(e1?.description.contains("unknown HDF5 error") == false, "\(e1?.description ?? "")")

        // A valid file cut in half.
        let whole = dir.appendingPathComponent("whole.h5").path
        try File(creating: whole).createDataset("image", type: .uint8, shape: [64, 64], chunks: [8, 64], gzipLevel: 4)
            .write((0..<4096).map { UInt8($0 % 256) })
        let data = try Data(contentsOf: URL(fileURLWithPath: whole))
        let cut = dir.appendingPathComponent("cut.h5").path
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        #expect(throws: HDF5Error.self) {
            let f = try File(opening: cut)
            _ = try f.dataset("image").read(as: UInt8.self)
        }
    }

    @Test func missingAttributeAndGroupAreNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.h5").path
        let file = try File(creating: path)
        let e1 = #expect(throws: HDF5Error.self) { try file.stringAttribute("format") }
        #expect(e1?.description == "\(path): attribute `format` of root group: H5Aopen failed: no such attribute")
        let e2 = #expect(throws: HDF5Error.self) { try file.group("optimizer") }
        #expect(e2?.description == "\(path): group `/optimizer`: H5Gopen2 failed: no such group")
    }
}
