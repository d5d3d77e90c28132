import Foundation
import HDF5

/// The HDF5 shard format (DESIGN.md §7, documented in Docs/data-format.md).
public enum ShardFormat {
    /// Value of the root attribute `format`.
    public static let name = "dsan-shard"
    /// Value of the root attribute `format_version`.
    public static let version: Int64 = 1
    /// gzip level for volumes: level 4 compresses masks ~50× and costs little to read.
    public static let gzipLevel = 4
    /// Dataset names.
    public static let image = "image", lung = "lung", infection = "infection", label = "label"
    public static let ratio = "infection_ratio", caseID = "case_id", patientID = "patient_id"
    /// Optional dataset: each case's `PreprocessingTransform` as JSON ("" when it has none).
    public static let transform = "transform"
    /// Spacing of preprocessed volumes in mm, (x, y, z) (DESIGN.md §7).
    public static let spacing: [Float] = [0.7168, 0.7168, 1.25]
    /// HU window mapped to [0, 1] (DESIGN.md §7): level −600, width 1500.
    public static let windowHU: [Float] = [-1350, 150]
}

/// Voxels of one case's image as stored: uint8 (value / 255) or float32 in [0, 1].
public enum ImageVoxels {
    case uint8([UInt8])
    case float32([Float])

    var count: Int {
        switch self {
        case .uint8(let v): return v.count
        case .float32(let v): return v.count
        }
    }
}

/// Writes one shard: N cases of size D×H×W, one chunk per case and volume, gzip-compressed.
///
/// The file is written under a temporary name and renamed into place by `finish()`, so a killed
/// writer never leaves a shard that looks complete.
public final class ShardWriter {
    public let path: String
    public let capacity: Int
    public let size: [Int]
    private let temporaryPath: String
    /// The open file and its volume datasets; nil once finished (HDF5 keeps a file open while
    /// any of its objects is, so all are released together before the rename).
    private var open: (file: File, image: Dataset, lung: Dataset, infection: Dataset)?
    private var infos: [CaseInfo] = []
    /// JSON of each case's preprocessing transform; "" for a case without one.
    private var transforms: [String] = []

    /// `size` is [D, H, W]; `imageType` `.uint8` or `.float32`; `source` says what made it
    /// (e.g. "dsan synth --seed 7"), stored as an attribute.
    public init(path: String, cases: Int, size: [Int], imageType: ElementType = .uint8, source: String) throws {
        precondition(size.count == 3 && cases > 0, "ShardWriter: size \(size), \(cases) cases")
        precondition(imageType == .uint8 || imageType == .float32, "ShardWriter: image type \(imageType)")
        self.path = path
        self.capacity = cases
        self.size = size
        temporaryPath = path + ".partial"
        let file = try File(creating: temporaryPath)
        let shape = [cases] + size, chunk = [1] + size
        let image = try file.createDataset(ShardFormat.image, type: imageType, shape: shape, chunks: chunk, gzipLevel: ShardFormat.gzipLevel)
        let lung = try file.createDataset(ShardFormat.lung, type: .uint8, shape: shape, chunks: chunk, gzipLevel: ShardFormat.gzipLevel)
        let infection = try file.createDataset(ShardFormat.infection, type: .uint8, shape: shape, chunks: chunk, gzipLevel: ShardFormat.gzipLevel)
        open = (file, image, lung, infection)
        try file.setAttribute("format", ShardFormat.name)
        try file.setAttribute("format_version", ShardFormat.version)
        try file.setAttribute("spacing_mm_xyz", ShardFormat.spacing)
        try file.setAttribute("window_hu", ShardFormat.windowHU)
        try file.setAttribute("source", source)
        try file.setAttribute("written_by", "dsan")
    }

    /// Appends a case. `lung` and `infection` are {0, 1}; `infection` nil means no mask (stored
    /// as zeros with ratio NaN; such a case can be predicted on, not trained on). `transform`
    /// (from `Preprocessing.prepare`) lets an output-size map be put back on the source scan; the
    /// shard gets a `transform` dataset only when some case has one.
    public func append(_ info: CaseInfo, image voxels: ImageVoxels, lung lungMask: [UInt8], infection infectionMask: [UInt8]?,
                       transform: PreprocessingTransform? = nil) throws {
        let n = size.reduce(1, *)
        precondition(voxels.count == n && lungMask.count == n && (infectionMask?.count ?? n) == n,
                     "ShardWriter.append: volume sizes do not match \(size)")
        precondition(infos.count < capacity, "ShardWriter.append: shard \(path) is full (\(capacity) cases)")
        guard let (_, image, lung, infection) = open else { preconditionFailure("ShardWriter.append after finish()") }
        let start = [infos.count, 0, 0, 0], count = [1] + size
        switch voxels {
        case .uint8(let v): try v.withUnsafeBufferPointer { try image.write($0, start: start, count: count) }
        case .float32(let v): try v.withUnsafeBufferPointer { try image.write($0, start: start, count: count) }
        }
        try lungMask.withUnsafeBufferPointer { try lung.write($0, start: start, count: count) }
        let inf = infectionMask ?? [UInt8](repeating: 0, count: n)
        try inf.withUnsafeBufferPointer { try infection.write($0, start: start, count: count) }
        var info = info
        if infectionMask == nil { info.infectionRatio = .nan }
        var json = ""
        if let transform {
            precondition(transform.size == size, "ShardWriter.append: transform for \(transform.size), shard is \(size)")
            json = String(decoding: try JSONEncoder().encode(transform), as: UTF8.self)
        }
        infos.append(info)
        transforms.append(json)
    }

    /// Writes the per-case metadata, closes the file and renames it into place.
    public func finish() throws {
        guard let file = open?.file else { return }
        precondition(infos.count == capacity, "ShardWriter.finish: \(infos.count) of \(capacity) cases written to \(path)")
        try file.createDataset(ShardFormat.label, type: .uint8, shape: [capacity]).write(infos.map { $0.label.rawValue })
        try file.createDataset(ShardFormat.ratio, type: .float32, shape: [capacity]).write(infos.map { $0.infectionRatio })
        try file.createDataset(ShardFormat.caseID, type: .string, shape: [capacity]).writeStrings(infos.map { $0.caseID })
        try file.createDataset(ShardFormat.patientID, type: .string, shape: [capacity]).writeStrings(infos.map { $0.patientID })
        if transforms.contains(where: { !$0.isEmpty }) {
            try file.createDataset(ShardFormat.transform, type: .string, shape: [capacity]).writeStrings(transforms)
        }
        try file.flush()
        open = nil
        if rename(temporaryPath, path) != 0 {
            throw DataError(file: path, "cannot rename \(temporaryPath) into place: \(String(cString: strerror(errno)))")
        }
    }
}

/// Reads one shard: metadata at open (validated), volumes case by case.
///
/// Opening checks that every dataset of DESIGN.md §7 exists with the right type and agreeing
/// shapes, that the shard holds at least one case, that `format` and `format_version` (when
/// present) are this dsan's, that labels are 0 or 1 and infection ratios in [0, 1] or NaN; each
/// failure names the file, the dataset and the case (`InputRules`, Docs/input-rules.md).
public final class ShardReader {
    public let path: String
    /// [D, H, W].
    public let size: [Int]
    public let imageType: ElementType
    public let infos: [CaseInfo]
    /// Per case, the preprocessing transform from the optional `transform` dataset (nil where
    /// the dataset is absent or the entry empty).
    private let transforms: [PreprocessingTransform?]
    private let file: File
    private let image, lung, infection: Dataset

    public var count: Int { infos.count }
    public var voxels: Int { size.reduce(1, *) }

    public init(path: String) throws {
        self.path = path
        let file = try File(opening: path)
        self.file = file
        let need = { (name: String) throws -> Dataset in
            guard try file.contains(name) else {
                throw DataError(file: path, "missing dataset `\(name)`; a shard needs image, lung, infection, label, infection_ratio, case_id and patient_id (Docs/data-format.md)")
            }
            return try file.dataset(name)
        }
        image = try need(ShardFormat.image)
        lung = try need(ShardFormat.lung)
        infection = try need(ShardFormat.infection)
        guard image.shape.count == 4 else {
            throw DataError(file: path, "dataset `image` has shape \(image.shape), expected [N, D, H, W]")
        }
        guard image.elementType == .uint8 || image.elementType == .float32 else {
            throw DataError(file: path, "dataset `image` has type \(image.elementType), expected uint8 or float32")
        }
        imageType = image.elementType
        size = Array(image.shape.dropFirst())
        let n = image.shape[0]
        for d in [lung, infection] {
            guard d.shape == image.shape else {
                throw DataError(file: path, "dataset `\(d.path.dropFirst())` has shape \(d.shape), expected \(image.shape) like `image`")
            }
            guard d.elementType == .uint8 else {
                throw DataError(file: path, "dataset `\(d.path.dropFirst())` has type \(d.elementType), expected uint8")
            }
        }
        let labelSet = try need(ShardFormat.label), ratioSet = try need(ShardFormat.ratio)
        let caseSet = try need(ShardFormat.caseID), patientSet = try need(ShardFormat.patientID)
        for d in [labelSet, ratioSet, caseSet, patientSet] where d.shape != [n] {
            throw DataError(file: path, "dataset `\(d.path.dropFirst())` has shape \(d.shape), expected [\(n)] (one entry per case)")
        }
        if n == 0 {
            throw DataError(file: path, "dataset `image` has shape \(image.shape): the shard holds 0 cases, expected at least 1; remove the file or write it again" + InputRules.seePage)
        }
        if try file.hasAttribute("format") {
            let format = try file.stringAttribute("format")
            guard format == ShardFormat.name else {
                throw DataError(file: path, "attribute `format` is `\(format)`, expected `\(ShardFormat.name)`: this is not a dsan shard" + InputRules.seePage)
            }
        }
        if try file.hasAttribute("format_version"), let version = try file.attribute("format_version", as: Int64.self).first,
           version != ShardFormat.version {
            throw DataError(file: path, "attribute `format_version` is \(version), expected \(ShardFormat.version) (the version this dsan reads); "
                            + (version > ShardFormat.version ? "update dsan" : "write the shard again with `dsan prepare`") + InputRules.seePage)
        }
        let labels = try labelSet.read(as: UInt8.self)
        let ratios = try ratioSet.read(as: Float.self)
        let cases = try caseSet.readStrings(), patients = try patientSet.readStrings()
        var infos: [CaseInfo] = []
        infos.reserveCapacity(n)
        for i in 0..<n {
            guard let label = Label(rawValue: labels[i]) else {
                throw DataError(file: path, caseID: cases[i], "label \(labels[i]) is not 0 (CAP) or 1 (COVID-19)")
            }
            if cases[i].isEmpty { throw DataError(file: path, "case \(i) has an empty case_id") }
            let r = ratios[i]
            if !r.isNaN && !(r >= 0 && r <= 1) {
                throw DataError(file: path, caseID: cases[i], "dataset `infection_ratio` is \(r), expected a value in [0, 1] (infection voxels / lung voxels) or NaN (no infection mask)" + InputRules.seePage)
            }
            infos.append(CaseInfo(caseID: cases[i], patientID: patients[i], label: label, infectionRatio: ratios[i]))
        }
        self.infos = infos
        var transforms = [PreprocessingTransform?](repeating: nil, count: n)
        if try file.contains(ShardFormat.transform) {
            let d = try file.dataset(ShardFormat.transform)
            guard d.shape == [n], d.elementType == .string else {
                throw DataError(file: path, "dataset `transform` is \(d.elementType) of shape \(d.shape), expected [\(n)] strings (one JSON transform per case, or empty)")
            }
            for (i, text) in try d.readStrings().enumerated() where !text.isEmpty {
                do {
                    let t = try JSONDecoder().decode(PreprocessingTransform.self, from: Data(text.utf8))
                    guard t.size == size else {
                        throw DataError(file: path, caseID: cases[i], "transform is for size \(t.size), the shard's volumes are \(size)")
                    }
                    transforms[i] = t
                } catch let error as DataError {
                    throw error
                } catch {
                    throw DataError(file: path, caseID: cases[i], "`transform` entry is not a valid preprocessing transform (\(error)); rewrite the shard with `dsan prepare`")
                }
            }
        }
        self.transforms = transforms
    }

    /// Whether the shard has the optional `transform` dataset.
    public var hasTransforms: Bool { transforms.contains { $0 != nil } }

    /// The preprocessing transform of case `index`: how its voxels map onto its source scan.
    /// nil when the shard has no `transform` dataset or the case none (e.g. synthetic cases).
    public func transform(_ index: Int) -> PreprocessingTransform? {
        check(index)
        return transforms[index]
    }

    /// v / 255 for every byte value.
    static let byteToUnit: [Float] = (0..<256).map { Float($0) / 255 }

    private func check(_ index: Int) {
        precondition(index >= 0 && index < count, "ShardReader: case \(index) of \(count) in \(path)")
    }

    /// Reads case `index`'s image as floats in [0, 1] (uint8 is divided by 255). `scratch` holds
    /// `voxels` bytes for the uint8 path.
    public func readImage(_ index: Int, into out: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<UInt8>) throws {
        check(index)
        precondition(out.count == voxels && scratch.count >= voxels, "readImage: buffers for \(size)")
        let start = [index, 0, 0, 0], count = [1] + size
        if imageType == .float32 {
            try image.read(into: out, start: start, count: count)
        } else {
            let s = UnsafeMutableBufferPointer(rebasing: scratch[0..<voxels])
            try image.read(into: s, start: start, count: count)
            // value / 255 exactly as numpy computes it, via a table.
            ShardReader.byteToUnit.withUnsafeBufferPointer { table in
                for i in 0..<voxels { out[i] = table[Int(s[i])] }
            }
        }
    }

    /// Reads case `index`'s lung (`infection == false`) or infection mask.
    public func readMask(_ index: Int, infection wantInfection: Bool, into out: UnsafeMutableBufferPointer<UInt8>) throws {
        check(index)
        try (wantInfection ? infection : lung).read(into: out, start: [index, 0, 0, 0], count: [1] + size)
    }

    /// Root attribute `format` and `format_version`, when present.
    public func formatAttributes() throws -> (name: String?, version: Int64?) {
        let name = try file.hasAttribute("format") ? try file.stringAttribute("format") : nil
        let version = try file.hasAttribute("format_version") ? try file.attribute("format_version", as: Int64.self).first : nil
        return (name, version)
    }
}
