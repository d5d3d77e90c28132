import NumericalTesting
import Testing
import VectorKernels
@testable import NN

/// Every build of the VectorKernels (baseline, AVX2, AVX-512) that this CPU supports against the
/// scalar references, bit for bit: the kernels promise the same IEEE operations in the same order on
/// every ISA level. Lengths are odd so the scalar tails run, and the inputs include +0, −0, NaN and
/// negative values, where the ReLU masks must give +0 like the reference's `x > 0 ? x : 0`.
@Suite(.serialized) struct VectorKernelsTests {
    /// 1000 vector lanes' worth plus a tail of 13, longer than one 16-lane AVX-512 vector.
    private let n = 1013

    private func values(seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let t = Tensor(zeros: [n])
        t.fillUniform(-2, 2, rng: &rng)
        var v = Array(UnsafeBufferPointer(start: t.data, count: n))
        v[3] = 0; v[17] = -0.0; v[40] = .nan; v[41] = -.infinity; v[n - 1] = -0.0
        return v
    }

    /// The levels this CPU runs, narrowest first (always includes the baseline).
    private var levels: [Int32] { Array(0...dsan_vk_supported_level()) }


    private func expectSameBits(_ a: [Float], _ b: [Float], _ what: String, _ level: Int32) {
        let name = String(cString: dsan_vk_level_name(level))
        let first = (0..<a.count).first { a[$0].bitPattern != b[$0].bitPattern }
        #expect(first == nil, "\(what) at level \(name): element \(first ?? -1) is \(first.map { a[$0] } ?? 0), reference \(first.map { b[$0] } ?? 0)")
    }

    @Test func startUpChoiceIsTheWidestSupported() {
        withVectorLevelUnchanged {   // other suites switch the level while they test each one
            #expect(dsan_vk_active_level() == dsan_vk_supported_level())
            #expect(dsan_vk_set_level(dsan_vk_supported_level() + 1) == -1)
            #expect(dsan_vk_set_level(-1) == -1)
            #expect(dsan_vk_active_level() == dsan_vk_supported_level())
        }
    }

    /// `DSAN_SIMD` parsed as the executable does at start-up, and the report's wording, for a
    /// CPU with each widest level (pure functions: no level is switched).
    @Test func dsanSIMDValuesAndTheirReport() throws {
        #expect(try VectorLevel.requested(nil, supported: .avx512) == nil)
        #expect(try VectorLevel.requested("AVX2", supported: .avx512) == .avx2)
        #expect(try VectorLevel.requested("baseline", supported: .baseline) == .baseline)
        #expect(throws: VectorLevelError.self) { try VectorLevel.requested("avx512", supported: .avx2) }
        do {
            _ = try VectorLevel.requested("sse9", supported: .avx512)
            Issue.record("DSAN_SIMD=sse9 was accepted")
        } catch {
            #expect("\(error)" == "DSAN_SIMD=sse9: expected one of baseline, avx2, avx512")
        }
        do {
            _ = try VectorLevel.requested("avx512", supported: .avx2)
            Issue.record("DSAN_SIMD=avx512 was accepted on an AVX2 CPU")
        } catch {
            #expect("\(error)" == "DSAN_SIMD=avx512: this CPU supports up to avx2; unset DSAN_SIMD or choose a narrower level")
        }
        #expect(VectorLevel.describe(active: .avx512, supported: .avx512, requested: nil) == "avx512, the widest this CPU has")
        #expect(VectorLevel.describe(active: .avx2, supported: .avx2, requested: nil) == "avx2, the widest this CPU has")
        #expect(VectorLevel.describe(active: .avx2, supported: .avx512, requested: "AVX2")
                == "avx2, set by DSAN_SIMD=avx2 (this CPU has up to avx512)")
        #expect(VectorLevel.describe(active: .baseline, supported: .baseline, requested: "baseline")
                == "baseline, set by DSAN_SIMD=baseline (the widest this CPU has)")
    }

    @Test func unaryAndBinaryKernelsMatchReferenceAtEveryLevel() {
        let x = values(seed: 1), y0 = values(seed: 2)
        atEveryVectorLevel { level in
            var out = [Float](repeating: 7, count: n), ref = [Float](repeating: 7, count: n)
            dsan_vk_relu_forward(x, &out, n); dsan_vk_reference_relu_forward(x, &ref, n)
            expectSameBits(out, ref, "relu_forward", level)
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { p in dsan_vk_relu_forward(p.baseAddress, p.baseAddress, n) }
            expectSameBits(inPlace, ref, "relu_forward in place", level)

            dsan_vk_relu_backward(x, y0, &out, n); dsan_vk_reference_relu_backward(x, y0, &ref, n)
            expectSameBits(out, ref, "relu_backward", level)
            dsan_vk_add(x, y0, &out, n); dsan_vk_reference_add(x, y0, &ref, n)
            expectSameBits(out, ref, "add", level)
            dsan_vk_add_relu(x, y0, &out, n); dsan_vk_reference_add_relu(x, y0, &ref, n)
            expectSameBits(out, ref, "add_relu", level)
            dsan_vk_affine(x, &out, n, 1.7, -0.3); dsan_vk_reference_affine(x, &ref, n, 1.7, -0.3)
            expectSameBits(out, ref, "affine", level)
            dsan_vk_bn_input_gradient(x, y0, &out, n, 0.11, -0.23, 0.71, 1.3)
            dsan_vk_reference_bn_input_gradient(x, y0, &ref, n, 0.11, -0.23, 0.71, 1.3)
            expectSameBits(out, ref, "bn_input_gradient", level)
            dsan_vk_scale(x, &out, n, 0.37); dsan_vk_reference_scale(x, &ref, n, 0.37)
            expectSameBits(out, ref, "scale", level)
        }
    }

    /// The scan before each Adam step finds the reference's first NaN, +∞ or −∞ at every level:
    /// in the first, a middle and the last vector group, in the scalar tail, with two bad entries
    /// (the first one counts), and none among finite extremes (±greatest, subnormals, ±0).
    @Test func firstNonFiniteMatchesReferenceAtEveryLevel() {
        let finite: [Float] = [0, -0.0, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, -.leastNormalMagnitude, 1, -3.5]
        var cases: [[Float]] = []
        for length in [0, 1, 7, 31, 64, 65, 1013] {
            let base = (0..<length).map { finite[$0 % finite.count] }
            cases.append(base)
            for position in Set([0, length / 2, length - 1, max(0, length - 33)]) where (0..<length).contains(position) {
                for bad: Float in [.nan, .infinity, -.infinity, -.nan] {
                    var v = base
                    v[position] = bad
                    cases.append(v)
                    if position + 3 < length { v[position + 3] = .nan; cases.append(v) }
                }
            }
        }
        atEveryVectorLevel { level in
            let name = String(cString: dsan_vk_level_name(level))
            for v in cases {
                let expected = dsan_vk_reference_first_nonfinite(v, v.count)
                #expect(expected == (v.firstIndex { !$0.isFinite } ?? v.count))
                #expect(dsan_vk_first_nonfinite(v, v.count) == expected, "\(name), \(v.count) elements")
            }
        }
    }

    @Test func adamMatchesReferenceAtEveryLevel() {
        let p0 = values(seed: 3).map { $0.isNaN ? 0.5 : max($0, -1) }
        let g = values(seed: 4).map { $0.isNaN || $0.isInfinite ? 0.25 : $0 }
        let m0 = values(seed: 5).map { $0.isNaN || $0.isInfinite ? 0 : $0 * 0.1 }
        let v0 = values(seed: 6).map { $0.isNaN || $0.isInfinite ? 0 : $0 * $0 * 0.01 }
        atEveryVectorLevel { level in
            var p = p0, m = m0, v = v0, pr = p0, mr = m0, vr = v0
            for _ in 0..<3 {
                dsan_vk_adam(&p, g, &m, &v, n, 2e-3, 0.05, 0.999, 0.1, 0.001, 1e-4, 1e-8)
                dsan_vk_reference_adam(&pr, g, &mr, &vr, n, 2e-3, 0.05, 0.999, 0.1, 0.001, 1e-4, 1e-8)
            }
            expectSameBits(p, pr, "adam θ", level)
            expectSameBits(m, mr, "adam m", level)
            expectSameBits(v, vr, "adam v", level)
            #expect(p != p0)
        }
    }

    /// The layers that call the kernels give the same bits at every level (a whole BatchNorm3d
    /// forward and backward, and an Adam step over two parameters).
    @Test func layersGiveTheSameBitsAtEveryLevel() {
        var rng = SplitMix64(seed: 9)
        let x = Tensor(zeros: [2, 3, 5, 6, 7]), dy = Tensor(zeros: [2, 3, 5, 6, 7])
        x.fillUniform(-1, 1, rng: &rng); dy.fillUniform(-1, 1, rng: &rng)
        var outputs: [[Float]] = []
        atEveryVectorLevel { _ in
            let bn = BatchNorm3d(channels: 3)
            let y = Tensor(zeros: x.shape), dx = Tensor(zeros: x.shape)
            bn.forward(x, into: y)
            bn.backward(dy, input: x, into: dx)
            let relu = Tensor(zeros: x.shape)
            ReLU.forward(y, into: relu)
            let w = Tensor(zeros: [5, 7]), gw = Tensor(zeros: [5, 7])
            w.fillUniform(-1, 1, rng: &rng); gw.fillUniform(-1, 1, rng: &rng)
            var wrng = SplitMix64(seed: 10)
            w.fillUniform(-1, 1, rng: &wrng); gw.fillUniform(-1, 1, rng: &wrng)
            let adam = Adam(parameters: [(w, gw), (bn.weight, bn.dWeight)])
            adam.step(); adam.step()
            outputs.append(Array(UnsafeBufferPointer(start: y.data, count: y.count))
                + Array(UnsafeBufferPointer(start: dx.data, count: dx.count))
                + Array(UnsafeBufferPointer(start: relu.data, count: relu.count))
                + Array(UnsafeBufferPointer(start: w.data, count: w.count))
                + Array(UnsafeBufferPointer(start: bn.weight.data, count: 3)))
        }
        for (k, o) in outputs.enumerated().dropFirst() { expectSameBits(o, outputs[0], "layers", Int32(k)) }
    }
}
