import Foundation
import Testing
@testable import CTData
import HDF5
import NumericalTesting

func temporaryDirectory(_ tag: String = "data") throws -> String { try Scratch.directory(tag) }

/// Writes a shard dataset by dataset through the HDF5 API the way h5py's defaults do (chunked,
/// gzip only, variable-length UTF-8 strings), letting a test break one thing at a time.
struct RawShard {
    var n = 2
    var size = [4, 5, 6]
    var imageType: ElementType = .uint8
    var lungShape: [Int]? = nil
    var lungType: ElementType = .uint8
    var labels: [UInt8] = [1, 0]
    var caseIDs = ["a", "b"]
    var omit: String? = nil
    var imageValues: [Float]? = nil
    var lungValue: UInt8 = 1
    var ratios: [Float]? = nil
    /// Root attributes `format` and `format_version` (h5py-written shards have neither).
    var format: String? = nil
    var formatVersion: Int64? = nil
    var lungValues: [UInt8]? = nil

    func write(_ path: String) throws {
        let file = try File(creating: path)
        let shape = [n] + size
        // HDF5 refuses a chunk larger than a fixed dimension: a 0-case shard is contiguous.
        let chunk: [Int]? = n > 0 ? [1] + size : nil, gzip: Int? = n > 0 ? 4 : nil
        let voxels = shape.reduce(1, *)
        if let format { try file.setAttribute("format", format) }
        if let formatVersion { try file.setAttribute("format_version", formatVersion) }
        if omit != "image" {
            let d = try file.createDataset("image", type: imageType, shape: shape, chunks: chunk, gzipLevel: gzip)
            if imageType == .uint8 { try d.write((0..<voxels).map { UInt8($0 % 256) }) }
            else { try d.write(imageValues ?? (0..<voxels).map { Float($0 % 256) / 255 }) }
        }
        if omit != "lung" {
            let ls = lungShape ?? shape
            let d = try file.createDataset("lung", type: lungType, shape: ls, chunks: n > 0 ? [1] + Array(ls.dropFirst()) : nil, gzipLevel: gzip)
            if lungType == .uint8 { try d.write(lungValues ?? [UInt8](repeating: lungValue, count: ls.reduce(1, *))) }
            else { try d.write([Float](repeating: 1, count: ls.reduce(1, *))) }
        }
        if omit != "infection" {
            // One infected voxel per case.
            var inf = [UInt8](repeating: 0, count: voxels)
            for c in 0..<n { inf[c * size.reduce(1, *)] = 1 }
            try file.createDataset("infection", type: .uint8, shape: shape, chunks: chunk, gzipLevel: gzip).write(inf)
        }
        if omit != "label" { try file.createDataset("label", type: .uint8, shape: [n]).write(labels) }
        if omit != "infection_ratio" {
            let r = ratios ?? [Float](repeating: 1 / Float(size.reduce(1, *)), count: n)
            try file.createDataset("infection_ratio", type: .float32, shape: [n]).write(r)
        }
        if omit != "case_id" { try file.createDataset("case_id", type: .string, shape: [n]).writeStrings(caseIDs) }
        if omit != "patient_id" { try file.createDataset("patient_id", type: .string, shape: [n]).writeStrings(caseIDs.map { "p-" + $0 }) }
    }
}

@Suite struct ShardRoundTripTests {
    @Test func writerAndReaderRoundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/shard-000.h5"
        let size = [3, 4, 5], n = 60
        let writer = try ShardWriter(path: path, cases: 2, size: size, source: "test")
        let image0 = (0..<n).map { UInt8($0 * 4) }
        let lung = (0..<n).map { UInt8($0 % 2) }
        let inf = (0..<n).map { UInt8($0 % 6 == 0 ? 1 : 0) }
        try writer.append(CaseInfo(caseID: "c1", patientID: "p1", label: .covid, infectionRatio: 0.25),
                          image: .uint8(image0), lung: lung, infection: inf)
        #expect(!FileManager.default.fileExists(atPath: path), "shard visible before finish()")
        try writer.append(CaseInfo(caseID: "c2", patientID: "p1", label: .covid, infectionRatio: 0),
                          image: .uint8(image0.reversed()), lung: lung, infection: nil)
        try writer.finish()
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))

        let reader = try ShardReader(path: path)
        #expect(reader.size == size && reader.count == 2 && reader.imageType == .uint8)
        #expect(reader.infos[0] == CaseInfo(caseID: "c1", patientID: "p1", label: .covid, infectionRatio: 0.25))
        #expect(reader.infos[1].infectionRatio.isNaN && !reader.infos[1].hasInfectionMask)
        var image = [Float](repeating: 0, count: n), scratch = [UInt8](repeating: 0, count: n), mask = [UInt8](repeating: 9, count: n)
        try image.withUnsafeMutableBufferPointer { im in try scratch.withUnsafeMutableBufferPointer { try reader.readImage(1, into: im, scratch: $0) } }
        #expect(image == image0.reversed().map { Float($0) / 255 })
        try mask.withUnsafeMutableBufferPointer { try reader.readMask(0, infection: true, into: $0) }
        #expect(mask == inf)
        try mask.withUnsafeMutableBufferPointer { try reader.readMask(1, infection: true, into: $0) }
        #expect(mask.allSatisfy { $0 == 0 })
        let (format, version) = try reader.formatAttributes()
        #expect(format == "dsan-shard" && version == 1)
        // Chunked one case per chunk, gzip only.
        let file = try File(opening: path)
        for name in ["image", "lung", "infection"] {
            let d = try file.dataset(name)
            #expect(d.chunks == [1] + size && d.isCompressed)
        }
    }

    @Test func floatImagesRoundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/f.h5"
        let size = [2, 2, 2]
        let values: [Float] = [0, 0.125, 0.25, 0.5, 0.75, 0.9, 1, 0.3]
        let w = try ShardWriter(path: path, cases: 1, size: size, imageType: .float32, source: "test")
        try w.append(CaseInfo(caseID: "x", patientID: "y", label: .cap, infectionRatio: 0), image: .float32(values),
                     lung: [UInt8](repeating: 1, count: 8), infection: [UInt8](repeating: 0, count: 8))
        try w.finish()
        let r = try ShardReader(path: path)
        var out = [Float](repeating: -1, count: 8), s = [UInt8](repeating: 0, count: 8)
        try out.withUnsafeMutableBufferPointer { o in try s.withUnsafeMutableBufferPointer { try r.readImage(0, into: o, scratch: $0) } }
        #expect(out == values && r.imageType == .float32)
    }

    @Test func shardWrittenLikeH5pyIsReadAndInspected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RawShard().write(dir + "/outside.h5")
        let cohort = try Cohort(directory: dir)
        #expect(cohort.count == 2 && cohort.size == [4, 5, 6])
        #expect(cohort.cases.map(\.label) == [.covid, .cap])
        let report = try Inspection.run(directory: dir)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.isValid)
    }
}

@Suite struct ShardErrorTests {
    func openError(_ shard: RawShard) throws -> String {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try shard.write(dir + "/bad.h5")
        do {
            _ = try ShardReader(path: dir + "/bad.h5")
            return "no error"
        } catch {
            return "\(error)".replacingOccurrences(of: dir, with: "DIR")
        }
    }

    @Test func missingDataset() throws {
        #expect(try openError(RawShard(omit: "lung")) == "DIR/bad.h5: missing dataset `lung`; a shard needs image, lung, infection, label, infection_ratio, case_id and patient_id (Docs/data-format.md)")
    }

    @Test func shapeMismatch() throws {
        #expect(try openError(RawShard(lungShape: [2, 4, 5, 5])) == "DIR/bad.h5: dataset `lung` has shape [2, 4, 5, 5], expected [2, 4, 5, 6] like `image`")
    }

    @Test func typeMismatch() throws {
        #expect(try openError(RawShard(lungType: .float32)) == "DIR/bad.h5: dataset `lung` has type float32, expected uint8")
    }

    @Test func unknownLabel() throws {
        #expect(try openError(RawShard(labels: [1, 7])) == "DIR/bad.h5: case b: label 7 is not 0 (CAP) or 1 (COVID-19)")
    }

    @Test func corruptFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RawShard().write(dir + "/good.h5")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/good.h5"))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: dir + "/cut.h5"))
        #expect(throws: (any Error).self) { _ = try Cohort(directory: dir) }
        let report = try Inspection.run(directory: dir)
        #expect(report.problems.count >= 1 && report.problems.allSatisfy { $0.contains("cut.h5") }, "\(report.problems)")
    }

    @Test func duplicateCaseIDAcrossShards() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RawShard(caseIDs: ["a", "b"]).write(dir + "/s0.h5")
        try RawShard(caseIDs: ["c", "a"]).write(dir + "/s1.h5")
        let error = #expect(throws: DataError.self) { _ = try Cohort(directory: dir) }
        #expect(error?.description == "\(dir)/s1.h5: case a: duplicate case id, also in \(dir)/s0.h5; case ids must be unique")
    }

    @Test func inspectFindsNaNVoxelsEmptyLungAndWrongRatio() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var values = (0..<240).map { Float($0 % 256) / 255 }
        values[7] = .nan
        try RawShard(imageType: .float32, imageValues: values).write(dir + "/nan.h5")
        try RawShard(caseIDs: ["c", "d"], lungValue: 0).write(dir + "/nolung.h5")
        try RawShard(caseIDs: ["e", "f"], ratios: [0.5, 1.0 / 120]).write(dir + "/ratio.h5")
        let report = try Inspection.run(directory: dir)
        let text = report.problems.joined(separator: "\n").replacingOccurrences(of: dir, with: "DIR")
        #expect(text.contains("DIR/nan.h5: case a: dataset `image`: voxel 7 is nan, expected a finite value in [0, 1]; re-run prepare on the source scan (see Docs/input-rules.md)"), "\(text)")
        #expect(text.contains("DIR/nolung.h5: case c: lung mask is empty; the network input is image × lung (see Docs/input-rules.md)"), "\(text)")
        #expect(text.contains("DIR/ratio.h5: case e: infection_ratio is 0.5 but the masks give 1 / 120 = 0.00833333 (see Docs/input-rules.md)"), "\(text)")
        #expect(!text.contains("case f:"), "\(text)")
        #expect(!report.isValid)
    }
}

@Suite struct PrefetchTests {
    @Test func prefetchedCasesEqualDirectReadsInOrder() throws {
        let dir = try temporaryDirectory("prefetch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SyntheticCohort.write(directory: dir, cases: 7, size: [16, 20, 18], seed: 2, shardSize: 3)
        let cohort = try Cohort(directory: dir)
        let order = [6, 0, 3, 3, 5, 1, 2, 4]
        let prefetcher = Prefetcher(cohort: cohort, depth: 2)
        prefetcher.schedule(Array(order.prefix(3)))
        var got: [LoadedCase] = []
        for k in 0..<order.count {
            if k == 3 { prefetcher.schedule(Array(order.dropFirst(3))) }
            got.append(try prefetcher.next())
        }
        #expect(got.map(\.index) == order)
        for c in got {
            let direct = try cohort.load(c.index)
            #expect(c.input == direct.input && c.infection == direct.infection && c.info == direct.info)
            // Input is image × lung: zero outside the lung.
            #expect(c.input.contains { $0 > 0 })
        }
    }
}
