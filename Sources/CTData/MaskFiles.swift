import Foundation
import NIfTI

/// Reads a mask, or the union of several joined with `+` (e.g. lung lobes: `lobe1.nii.gz+lobe2.nii.gz`).
/// A path that exists is taken as one file even if it contains `+`. The first part is used as
/// given; later relative parts are resolved against `directory` (the manifest's; nil: the
/// working directory). Every part must share the first's dims and affine; the union is 1 where
/// any part is nonzero.
public enum MaskFiles {
    public static func read(_ cell: String, partsRelativeTo directory: String?) throws -> Volume {
        if FileManager.default.fileExists(atPath: cell) || !cell.contains("+") {
            return try NIfTI.read(cell)
        }
        let parts = cell.split(separator: "+", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        if parts.contains(where: \.isEmpty) {
            throw DataError(file: cell, "has an empty part between `+` signs; join mask files as a.nii.gz+b.nii.gz")
        }
        func resolve(_ p: String) -> String {
            guard let directory, !p.hasPrefix("/") else { return p }
            return (directory as NSString).appendingPathComponent(p)
        }
        let first = parts[0]
        var union = try NIfTI.read(first)
        for part in parts.dropFirst() {
            let path = resolve(part)
            let mask = try NIfTI.read(path)
            guard mask.dims == union.dims else {
                throw DataError(file: path, "is \(mask.dims.map(String.init).joined(separator: "×")) voxels but \(first) is \(union.dims.map(String.init).joined(separator: "×")); masks joined with + must share one voxel grid")
            }
            let d = mask.affine.maxDifference(union.affine)
            guard d <= 1e-3 else {
                throw DataError(file: path, "has a voxel-to-world affine that differs from \(first)'s by \(d) mm; masks joined with + must share one voxel grid")
            }
            for i in 0..<union.voxels.count where mask.voxels[i] != 0 { union.voxels[i] = 1 }
        }
        for i in 0..<union.voxels.count where union.voxels[i] != 0 { union.voxels[i] = 1 }
        union.name = cell
        return union
    }
}
