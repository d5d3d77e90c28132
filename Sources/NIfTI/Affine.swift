/// A voxel-to-world transform: world (mm) = A · (i, j, k, 1), the top three rows of NIfTI's 4×4
/// matrix (the last row is always 0 0 0 1). NIfTI's world is RAS+: +x points to the patient's
/// Right, +y Anterior, +z Superior, whatever the file's voxel order.
public struct Affine: Equatable, Sendable, Codable, CustomStringConvertible {
    /// Row-major 3×4: `m[4 * row + column]`.
    public var m: [Double]

    public init(rows: [[Double]]) {
        precondition(rows.count == 3 && rows.allSatisfy { $0.count == 4 }, "Affine takes 3 rows of 4")
        m = rows.flatMap { $0 }
    }

    /// Diagonal scaling plus a translation.
    public init(scale: [Double], offset: [Double] = [0, 0, 0]) {
        precondition(scale.count == 3 && offset.count == 3)
        m = [scale[0], 0, 0, offset[0], 0, scale[1], 0, offset[1], 0, 0, scale[2], offset[2]]
    }

    public static let identity = Affine(scale: [1, 1, 1])

    public subscript(row: Int, column: Int) -> Double {
        get { m[4 * row + column] }
        set { m[4 * row + column] = newValue }
    }

    /// Column `c` of the 3×3 part: the world step of one voxel along voxel axis `c`.
    public func column(_ c: Int) -> [Double] { [self[0, c], self[1, c], self[2, c]] }

    /// The translation: world position of voxel (0, 0, 0).
    public var offset: [Double] { [self[0, 3], self[1, 3], self[2, 3]] }

    /// Voxel size along each voxel axis (mm): the lengths of the three columns.
    public var spacing: [Double] {
        (0..<3).map { c in column(c).reduce(0) { $0 + $1 * $1 }.squareRoot() }
    }

    public var isFinite: Bool { m.allSatisfy { $0.isFinite } }

    /// Determinant of the 3×3 part; negative for a left-handed voxel grid (most DICOM-derived files).
    public var determinant: Double {
        let a = self
        return a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1])
            - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
            + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0])
    }

    /// World coordinates of a (possibly fractional) voxel index.
    public func apply(_ p: [Double]) -> [Double] {
        (0..<3).map { r in self[r, 0] * p[0] + self[r, 1] * p[1] + self[r, 2] * p[2] + self[r, 3] }
    }

    /// `self ∘ other`: first `other`, then `self`.
    public static func * (a: Affine, b: Affine) -> Affine {
        var c = Affine.identity
        for r in 0..<3 {
            for k in 0..<4 {
                var s = k == 3 ? a[r, 3] : 0
                for j in 0..<3 { s += a[r, j] * b[j, k] }
                c[r, k] = s
            }
        }
        return c
    }

    /// The inverse transform. The 3×3 part must be invertible (check `determinant` first: data
    /// from a file is the caller's to validate).
    public var inverse: Affine {
        let det = determinant
        precondition(det != 0 && det.isFinite, "inverse of a singular affine")
        let a = self
        var inv = Affine.identity
        inv[0, 0] = (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]) / det
        inv[0, 1] = (a[0, 2] * a[2, 1] - a[0, 1] * a[2, 2]) / det
        inv[0, 2] = (a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]) / det
        inv[1, 0] = (a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]) / det
        inv[1, 1] = (a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]) / det
        inv[1, 2] = (a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]) / det
        inv[2, 0] = (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]) / det
        inv[2, 1] = (a[0, 1] * a[2, 0] - a[0, 0] * a[2, 1]) / det
        inv[2, 2] = (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]) / det
        for r in 0..<3 {
            inv[r, 3] = -(inv[r, 0] * a[0, 3] + inv[r, 1] * a[1, 3] + inv[r, 2] * a[2, 3])
        }
        return inv
    }

    /// Largest absolute difference between corresponding entries.
    public func maxDifference(_ other: Affine) -> Double {
        zip(m, other.m).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    public var description: String {
        (0..<3).map { r in "[" + (0..<4).map { c in "\(self[r, c])" }.joined(separator: ", ") + "]" }
            .joined(separator: ", ")
    }
}

// MARK: - Quaternions (NIfTI-1 qform), after nifti1_io.c

/// The qform parameters of NIfTI-1: a rotation as the quaternion (b, c, d) with a = √(1 − b² − c² − d²),
/// voxel sizes, qfac (±1, stored in pixdim[0]) and the offset.
public struct Quaternion: Equatable, Sendable {
    public var b, c, d: Double
    public var offset: [Double]
    public var spacing: [Double]
    public var qfac: Double

    public init(b: Double, c: Double, d: Double, offset: [Double], spacing: [Double], qfac: Double) {
        self.b = b; self.c = c; self.d = d
        self.offset = offset; self.spacing = spacing; self.qfac = qfac
    }

    /// The qform affine (nifti1_io `nifti_quatern_to_mat44`). A (b, c, d) of norm ≥ 1 is a 180°
    /// rotation and is normalised; a zero or non-finite voxel size counts as 1, a negative one as
    /// its absolute value; qfac < 0 flips the third axis.
    public var affine: Affine {
        var b = self.b, c = self.c, d = self.d
        var a = 1 - (b * b + c * c + d * d)
        if a < 1e-7 {
            let n = 1 / (b * b + c * c + d * d).squareRoot()
            b *= n; c *= n; d *= n
            a = 0
        } else {
            a = a.squareRoot()
        }
        func size(_ v: Double) -> Double { v.isFinite && v != 0 ? abs(v) : 1 }
        let xd = size(spacing[0]), yd = size(spacing[1])
        var zd = size(spacing[2])
        if qfac < 0 { zd = -zd }
        let r: [[Double]] = [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
        return Affine(rows: (0..<3).map { i in [r[i][0] * xd, r[i][1] * yd, r[i][2] * zd, offset[i]] })
    }

    /// The qform closest to `affine` (nifti1_io `nifti_mat44_to_quatern`): column lengths become
    /// the voxel sizes, the normalised 3×3 part is orthogonalised by polar decomposition, and a
    /// left-handed grid is expressed as qfac = −1. A shear or a zero column cannot be represented
    /// and is dropped; the sform keeps the exact matrix.
    public init(affine: Affine) {
        var cols = (0..<3).map { affine.column($0) }
        var sizes = [Double](repeating: 1, count: 3)
        for j in 0..<3 {
            let n = cols[j].reduce(0) { $0 + $1 * $1 }.squareRoot()
            if n > 0 && n.isFinite {
                sizes[j] = n
                cols[j] = cols[j].map { $0 / n }
            } else {
                cols[j] = (0..<3).map { $0 == j ? 1 : 0 }
            }
        }
        // r[row][col]
        var r = (0..<3).map { i in (0..<3).map { j in cols[j][i] } }
        r = polarRotation(r)
        let det = det3(r)
        var qfac = 1.0
        if det <= 0 {
            qfac = -1
            for i in 0..<3 { r[i][2] = -r[i][2] }
        }
        var a = r[0][0] + r[1][1] + r[2][2] + 1
        var b, c, d: Double
        if a > 0.5 {
            a = 0.5 * a.squareRoot()
            b = 0.25 * (r[2][1] - r[1][2]) / a
            c = 0.25 * (r[0][2] - r[2][0]) / a
            d = 0.25 * (r[1][0] - r[0][1]) / a
        } else {
            let xd = 1 + r[0][0] - (r[1][1] + r[2][2])
            let yd = 1 + r[1][1] - (r[0][0] + r[2][2])
            let zd = 1 + r[2][2] - (r[0][0] + r[1][1])
            if xd > 1 {
                b = 0.5 * xd.squareRoot()
                c = 0.25 * (r[0][1] + r[1][0]) / b
                d = 0.25 * (r[0][2] + r[2][0]) / b
                a = 0.25 * (r[2][1] - r[1][2]) / b
            } else if yd > 1 {
                c = 0.5 * yd.squareRoot()
                b = 0.25 * (r[0][1] + r[1][0]) / c
                d = 0.25 * (r[1][2] + r[2][1]) / c
                a = 0.25 * (r[0][2] - r[2][0]) / c
            } else {
                d = 0.5 * zd.squareRoot()
                b = 0.25 * (r[0][2] + r[2][0]) / d
                c = 0.25 * (r[1][2] + r[2][1]) / d
                a = 0.25 * (r[1][0] - r[0][1]) / d
            }
            if a < 0 { b = -b; c = -c; d = -d }
        }
        self.init(b: b, c: c, d: d, offset: affine.offset, spacing: sizes, qfac: qfac)
    }
}

func det3(_ r: [[Double]]) -> Double {
    r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
}

/// The orthogonal factor U·Vᵀ of a 3×3 matrix's polar decomposition, by Newton's iteration
/// X ← (X + X⁻ᵀ) / 2, which converges quadratically for a non-singular matrix (Higham 1986). A
/// singular matrix is returned unchanged: callers check the determinant where it matters.
func polarRotation(_ m: [[Double]]) -> [[Double]] {
    var x = m
    for _ in 0..<100 {
        let det = det3(x)
        guard det != 0 && det.isFinite else { return m }
        // inverse transpose = cofactor matrix / det
        var cof = [[Double]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 {
            for j in 0..<3 {
                let i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3
                cof[i][j] = (x[i1][j1] * x[i2][j2] - x[i1][j2] * x[i2][j1]) / det
            }
        }
        var next = x
        var change = 0.0
        for i in 0..<3 {
            for j in 0..<3 {
                next[i][j] = 0.5 * (x[i][j] + cof[i][j])
                change = max(change, abs(next[i][j] - x[i][j]))
            }
        }
        x = next
        if change < 1e-15 { break }
    }
    return x
}
