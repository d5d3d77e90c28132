import Tensor

/// A synthetic cohort of CT-like volumes for CI and demos (`dsan synth`).
///
/// Each case is a chest CT in Hounsfield units: air outside an elliptic body of soft tissue, two
/// lungs near −850 HU with vessels, and lesions that differ by class as the paper describes them:
/// COVID-19 multifocal, bilateral, peripheral ground-glass (−600…−300 HU); CAP focal, lobar
/// consolidation (0…50 HU) in one lung. Infection sizes follow the paper's Table III
/// training-validation counts per class and ratio band, so both classes cover every size and the
/// imbalance that size-balanced sampling corrects is there. The image is windowed like real data
/// (DESIGN.md §7). Everything is a pure function of (seed, case index).
public enum SyntheticCohort {
    /// Table III (training-validation) case counts per ratio band (< 0.005, 0.005–0.030, > 0.030).
    public static let covidBandCounts = [151, 318, 625]
    public static let capBandCounts = [838, 183, 71]

    /// One planned case: identity, label and the infection ratio to aim for.
    public struct Plan: Sendable, Equatable {
        public var index: Int
        public var caseID: String
        public var patientID: String
        public var label: Label
        public var targetRatio: Double
    }

    /// Splits `total` into parts proportional to `weights` (largest remainder), summing to total.
    static func apportion(_ total: Int, _ weights: [Int]) -> [Int] {
        let sum = weights.reduce(0, +)
        var parts = weights.map { total * $0 / sum }
        let order = weights.indices.sorted {
            let a = total * weights[$0] % sum, b = total * weights[$1] % sum
            return a != b ? a > b : $0 < $1
        }
        var left = total - parts.reduce(0, +)
        for i in order where left > 0 { parts[i] += 1; left -= 1 }
        return parts
    }

    /// Plans `n` cases: labels in the paper's proportion, bands per class in Table III
    /// proportion, patients with 1–3 scans each, ids `prefix-00001`….
    public static func plan(cases n: Int, seed: UInt64, prefix: String = "synth") -> [Plan] {
        precondition(n > 0, "SyntheticCohort.plan: \(n) cases")
        var rng = SplitMix64(seed: derivedSeed(seed, 0x5EED))
        let covidTotal = covidBandCounts.reduce(0, +), capTotal = capBandCounts.reduce(0, +)
        let split = apportion(n, [covidTotal, capTotal])
        var slots: [(Label, Int)] = []
        for (label, counts, k) in [(Label.covid, covidBandCounts, split[0]), (.cap, capBandCounts, split[1])] {
            for (band, m) in apportion(k, counts).enumerated() { slots += Array(repeating: (label, band), count: m) }
        }
        for i in stride(from: slots.count - 1, to: 0, by: -1) { slots.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        // Patients: consecutive cases of one label, 1–3 scans (60 / 25 / 15 %).
        var patientOf = [Int](repeating: -1, count: n)
        var patients = 0
        for label in Label.allCases {
            let mine = slots.indices.filter { slots[$0].0 == label }
            var i = 0
            while i < mine.count {
                let u = rng.uniform()
                let scans = min(mine.count - i, u < 0.60 ? 1 : (u < 0.85 ? 2 : 3))
                for j in i..<(i + scans) { patientOf[mine[j]] = patients }
                patients += 1
                i += scans
            }
        }
        let digits = max(5, String(n).count)
        func pad(_ v: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, digits - s.count)) + s }
        return slots.enumerated().map { i, slot in
            let (lo, hi): (Double, Double) = [(0.0001, 0.005), (0.005, 0.030), (0.030, 0.25)][slot.1]
            let r = lo * pow(hi / lo, rng.uniform())  // log-uniform within the band
            return Plan(index: i, caseID: "\(prefix)-\(pad(i + 1))", patientID: "\(prefix)-p\(pad(patientOf[i] + 1))",
                        label: slot.0, targetRatio: r)
        }
    }

    /// Hounsfield values of the tissues.
    enum HU {
        static let air: Float = -1000, tissue: Float = 40, lung: Float = -850, vessel: Float = 30
        static let ggo: ClosedRange<Float> = -600 ... -300, consolidation: ClosedRange<Float> = 0...50
    }

    /// A generated case at size [D, H, W] (z, y, x): image windowed to uint8, lung and infection
    /// masks, and the infection ratio measured on the masks.
    public struct Volume {
        public var image: [UInt8]
        public var lung: [UInt8]
        public var infection: [UInt8]
        public var ratio: Float
    }

    /// An axis-aligned ellipsoid in voxel coordinates (z, y, x).
    struct Ellipsoid {
        var center: (Double, Double, Double)
        var radius: (Double, Double, Double)

        func inside(_ z: Double, _ y: Double, _ x: Double) -> Double {
            let a = (z - center.0) / radius.0, b = (y - center.1) / radius.1, c = (x - center.2) / radius.2
            return a * a + b * b + c * c
        }
    }

    /// Generates the volume of one planned case.
    public static func generate(_ plan: Plan, size: [Int], seed: UInt64) -> Volume {
        precondition(size.count == 3 && size.allSatisfy { $0 >= 8 }, "SyntheticCohort.generate: size \(size)")
        let (D, H, W) = (size[0], size[1], size[2])
        let (d, h, w) = (Double(D), Double(H), Double(W))
        var rng = SplitMix64(seed: derivedSeed(seed, UInt64(plan.index), 0xC7))
        func jitter(_ s: Double) -> Double { 1 + s * (2 * rng.uniform() - 1) }

        // Body and lungs.
        let body = (h * 0.44 * jitter(0.05), w * 0.47 * jitter(0.04))
        let lungs = [-1.0, 1.0].map { side in
            Ellipsoid(center: (d * 0.5 * jitter(0.03), h * 0.47 * jitter(0.03), w * (0.5 + side * 0.2 * jitter(0.05))),
                      radius: (d * 0.42 * jitter(0.06), h * 0.29 * jitter(0.06), w * 0.15 * jitter(0.08)))
        }
        let n = D * H * W
        var hu = [Float](repeating: HU.air, count: n)
        var lung = [UInt8](repeating: 0, count: n)
        for z in 0..<D {
            for y in 0..<H {
                let dy = (Double(y) + 0.5 - h / 2) / body.0
                for x in 0..<W {
                    let dx = (Double(x) + 0.5 - w / 2) / body.1
                    let i = (z * H + y) * W + x
                    if dy * dy + dx * dx <= 1 { hu[i] = HU.tissue }
                    let p = (Double(z) + 0.5, Double(y) + 0.5, Double(x) + 0.5)
                    if lungs.contains(where: { $0.inside(p.0, p.1, p.2) <= 1 }) {
                        hu[i] = HU.lung
                        lung[i] = 1
                    }
                }
            }
        }
        // Vessels: segments from each hilum outward, drawn as chains of small spheres.
        let vesselRadius = max(0.6, w * 0.012)
        for l in lungs {
            for _ in 0..<8 {
                let hilum = (l.center.0 + l.radius.0 * 0.2 * (2 * rng.uniform() - 1), l.center.1, l.center.2 - (l.center.2 - w / 2) * 0.5)
                let theta = 2 * Double.pi * rng.uniform(), phi = acos(2 * rng.uniform() - 1)
                let dir = (cos(phi), sin(phi) * sin(theta), sin(phi) * cos(theta))
                let length = 0.8 * min(l.radius.0, min(l.radius.1, l.radius.2 * 2))
                var t = 0.0
                while t < length {
                    let c = (hilum.0 + dir.0 * t, hilum.1 + dir.1 * t * l.radius.1 / l.radius.0, hilum.2 + dir.2 * t * l.radius.2 / l.radius.0)
                    paint(&hu, nil, size: (D, H, W), center: c, radius: (vesselRadius, vesselRadius, vesselRadius),
                          lung: lung) { _, _ in HU.vessel }
                    t += vesselRadius
                }
            }
        }
        // Lesions.
        let lungVoxels = lung.reduce(0) { $0 + Int($1) }
        var infection = [UInt8](repeating: 0, count: n)
        let target = plan.targetRatio * Double(lungVoxels)
        let covid = plan.label == .covid
        let blobs = covid ? 2 + Int(rng.next() % 6) : 1 + Int(rng.next() % 2)
        let lobarSide = Int(rng.next() % 2)
        for b in 0..<blobs {
            let l = lungs[covid ? b % 2 : lobarSide]
            let volume = target / Double(blobs)
            let r = max(0.5, cbrt(3 * volume / (4 * Double.pi)))
            // COVID: peripheral (0.7–0.9 of the way to the lung surface); CAP: lower lobe, anywhere.
            let theta = 2 * Double.pi * rng.uniform()
            let reach = covid ? 0.7 + 0.2 * rng.uniform() : 0.5 * rng.uniform()
            let zc = covid ? l.center.0 + l.radius.0 * reach * (2 * rng.uniform() - 1) * 0.7
                           : l.center.0 + l.radius.0 * (0.2 + 0.4 * rng.uniform())
            let c = (zc, l.center.1 + l.radius.1 * reach * sin(theta), l.center.2 + l.radius.2 * reach * cos(theta))
            let aniso = (jitter(0.3), jitter(0.3), jitter(0.3))
            let range = covid ? HU.ggo : HU.consolidation
            let base = range.lowerBound + Float(rng.uniform()) * (range.upperBound - range.lowerBound)
            var texture = SplitMix64(seed: rng.next())
            paint(&hu, &infection, size: (D, H, W), center: c, radius: (r * aniso.0, r * aniso.1, r * aniso.2),
                  lung: lung) { _, _ in
                min(range.upperBound, max(range.lowerBound, base + Float(texture.uniform() - 0.5) * 60))
            }
        }
        // Scanner noise, window, quantise (DESIGN.md §7).
        var image = [UInt8](repeating: 0, count: n)
        let lo = ShardFormat.windowHU[0], hi = ShardFormat.windowHU[1]
        for i in 0..<n {
            let v = hu[i] + Float(rng.normal()) * 18
            let t = (min(hi, max(lo, v)) - lo) / (hi - lo)
            image[i] = UInt8((t * 255).rounded())
        }
        let infected = infection.reduce(0) { $0 + Int($1) }
        let ratio = lungVoxels > 0 ? Float(Double(infected) / Double(lungVoxels)) : 0
        return Volume(image: image, lung: lung, infection: infection, ratio: ratio)
    }

    /// Sets voxels inside an ellipsoid (and inside the lung) to `value(z, y, x)`, marking them in
    /// `mask` when given. Visits only the bounding box.
    static func paint(_ hu: inout [Float], _ mask: UnsafeMutablePointer<[UInt8]>?, size: (Int, Int, Int),
                      center: (Double, Double, Double), radius: (Double, Double, Double), lung: [UInt8],
                      value: (Int, Int) -> Float) {
        let (D, H, W) = size
        let e = Ellipsoid(center: center, radius: radius)
        let z0 = max(0, Int(center.0 - radius.0)), z1 = min(D - 1, Int(center.0 + radius.0))
        let y0 = max(0, Int(center.1 - radius.1)), y1 = min(H - 1, Int(center.1 + radius.1))
        let x0 = max(0, Int(center.2 - radius.2)), x1 = min(W - 1, Int(center.2 + radius.2))
        if z0 > z1 || y0 > y1 || x0 > x1 { return }
        for z in z0...z1 {
            for y in y0...y1 {
                for x in x0...x1 {
                    let i = (z * H + y) * W + x
                    guard lung[i] != 0, e.inside(Double(z) + 0.5, Double(y) + 0.5, Double(x) + 0.5) <= 1 else { continue }
                    hu[i] = value(z, y)
                    mask?.pointee[i] = 1
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
