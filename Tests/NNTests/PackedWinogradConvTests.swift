import NumericalTesting
import Testing
import VectorKernels
@testable import NN

// Whole Winograd convs on dsan's packed path (PackedGEMMTests holds its kernels): against float64
// at the paper's widths, the same bits on any thread count and however the one-block GEMM phase
// cuts its panels (slices of columns, matrix parts, tile parts, staged or direct transform), and
// the rules that choose the cuts and the path.

@Suite(.serialized) struct PackedWinogradConvTests {
    /// The slice of a transformed panel kept in L2: 256 KiB of 64 ξ × columns × R rows, a multiple
    /// of 8 columns, never more than the matrix has; 0 takes whole panels.
    @Test func panelSliceFollowsTheRowsPerPanel() {
        #expect(WinogradConv.panelSlice(columns: 512, panelRows: 16) == 64)    // AVX2: 64·64·16 floats = 256 KiB
        #expect(WinogradConv.panelSlice(columns: 512, panelRows: 32) == 32)    // AVX-512
        #expect(WinogradConv.panelSlice(columns: 512, panelRows: 8) == 128)    // baseline
        #expect(WinogradConv.panelSlice(columns: 40, panelRows: 16) == 40)
        WinogradConv.$panelSliceColumns.withValue(0) {
            #expect(WinogradConv.panelSlice(columns: 512, panelRows: 16) == 512)
        }
        WinogradConv.$panelSliceColumns.withValue(24) {
            #expect(WinogradConv.panelSlice(columns: 512, panelRows: 16) == 24)
            #expect(WinogradConv.panelSlice(columns: 20, panelRows: 16) == 20)
        }
        // `dsan bench tuning --setting panel-slice-kib=N` sizes the slice.
        ConvTuning.with(.panelSliceKiB, 512) { #expect(WinogradConv.panelSlice(columns: 512, panelRows: 32) == 64) }
        ConvTuning.with(.panelSliceKiB, 100) { #expect(WinogradConv.panelSlice(columns: 512, panelRows: 32) == 8) }
    }

    /// The packed path of whole convs (forward, dX and dW) against float64 at the paper's widths
    /// (64 → 64 on 8×16×32: 512 tiles in two blocks of 256; 64 → 64 and 256 → 256 on 4×8×8: 32
    /// tiles, layer3 at batch 1; dW by the fused kernel in all three), at the GEMM's level (the
    /// kernels are held to float64 at every level above; `DSAN_SIMD=baseline` runs this at the
    /// baseline level). Measured here (AVX2): within 3e-7 of max |reference|; the bound is
    /// WinogradTests' 2e-5.
    @Test func convsMatchFloat64AtThePapersWidths() {
        for (channels, extent) in [(64, [8, 16, 32]), (64, [4, 8, 8]), (256, [4, 8, 8])] {
            let g = Conv3dGeometry(inChannels: channels, outChannels: channels, kernel: 3, stride: 1, padding: 1)
            let s = Shape5(n: 1, c: channels, d: extent[0], h: extent[1], w: extent[2])
            let x = uniformTensor(s.dims, seed: 81), w = uniformTensor(g.weightShape, seed: 82, -0.1, 0.1)
            let dy = uniformTensor(s.dims, seed: 83)
            let yReference = float64Conv3x3(x.array, s, w.array, outC: channels, transposedFlipped: false)
            let dxReference = float64Conv3x3(dy.array, s, w.array, outC: channels, transposedFlipped: true)
            let dwReference = float64WeightGradient3x3(s, x.array, dy.array, outC: channels)
            let ws = ConvWorkspace()
            WinogradGEMM.choice.with(.packed) {
                let y = Tensor(shape: s.dims, repeating: .nan), dx = Tensor(shape: s.dims, repeating: .nan)
                let dw = Tensor(zeros: g.weightShape)
                winogradForward(y: y, x: x, weight: w, geometry: g, buffers: ws.winograd)
                winogradBackward(dX: dx, dWeight: dw, dY: dy, x: x, weight: w, geometry: g, buffers: ws.winograd)
                let (ey, ex) = (relativeErrorAgainstFloat64(y.array, yReference), relativeErrorAgainstFloat64(dx.array, dxReference))
                let ew = relativeErrorAgainstFloat64(dw.array, dwReference)
                print("packed F(2,3) at \(channels) channels: max|Δ|/max|ref| vs float64 forward \(ey), dX \(ex), dW \(ew)")
                #expect(ey <= 2e-5 && ex <= 2e-5 && ew <= 2e-5, "\(channels) channels: forward \(ey), dX \(ex), dW \(ew)")
            }
        }
    }

    /// On the packed path every value is still computed by one worker in a fixed order: 1, 2, 3 and
    /// 8 threads give the same bits (at width 64, where each worker gets several row panels), for
    /// the forward, dX and the fused dW (blocks of 32 tiles: dW accumulates over 5 blocks, 78
    /// tiles per sample, where OpenBLAS's GEMMs took dW before the fused kernel's 32 KiB chunks).
    @Test func packedPathDoesNotDependOnThreads() {
        let g = Conv3dGeometry(inChannels: 64, outChannels: 48, kernel: 3, stride: 1, padding: 1)
        let s = Shape5(n: 2, c: 64, d: 4, h: 6, w: 26)
        let x = uniformTensor(s.dims, seed: 91), w = uniformTensor(g.weightShape, seed: 92, -0.1, 0.1)
        let dy = uniformTensor([2, 48, 4, 6, 26], seed: 93)
        func run(_ threads: Int) -> [Float] {
            ThreadSettings.with(parallel: threads, blas: threads) {
                WinogradGEMM.choice.with(.packed) {
                    let ws = ConvWorkspace()
                    let y = Tensor(zeros: dy.shape), dx = Tensor(zeros: s.dims), dw = Tensor(zeros: g.weightShape)
                    winogradForward(y: y, x: x, weight: w, geometry: g, buffers: ws.winograd, blockBytes: 1)
                    winogradBackward(dX: dx, dWeight: dw, dY: dy, x: x, weight: w, geometry: g,
                                     buffers: ws.winograd, blockBytes: 1)
                    return y.array + dx.array + dw.array
                }
            }
        }
        let one = run(1)
        #expect(one == run(2))
        #expect(one == run(3))
        // 4 jobs of the fused dW at AVX-512 (6 at AVX2): 8 workers cut their products into parts
        // of the 64 ξ (`weightGradientParts`), 3 at AVX-512 too.
        #expect(WinogradConv.weightGradientParts(jobs: dsan_winograd_weight_gradient_jobs(48, 64), workers: 8) > 1)
        #expect(one == run(8))
    }

    /// The fused weight gradient's products go in parts of the 64 ξ only when there are fewer than
    /// two jobs per worker, in the fewest parts (2, 4, 8, 16) that make two items per worker.
    @Test func weightGradientPartsFollowTheWorkers() {
        #expect(WinogradConv.weightGradientParts(jobs: 4, workers: 2) == 1)     // layer1 at AVX-512, 2 cores
        #expect(WinogradConv.weightGradientParts(jobs: 4, workers: 3) == 2)
        #expect(WinogradConv.weightGradientParts(jobs: 4, workers: 16) == 8)    // layer1 on a 16-core node
        #expect(WinogradConv.weightGradientParts(jobs: 12, workers: 16) == 4)   // layer2
        #expect(WinogradConv.weightGradientParts(jobs: 48, workers: 16) == 1)   // layer3
        #expect(WinogradConv.weightGradientParts(jobs: 4, workers: 64) == 16)   // never more than 16
        #expect(WinogradConv.weightGradientParts(jobs: 1, workers: 64) == 16)
        #expect(WinogradConv.weightGradientParts(jobs: 4, workers: 1) == 1)
    }

    /// A conv of one block transforms the weights panel by panel inside the GEMM phase
    /// (`TransformedWeights.panels`), in slices of the panel's columns (`panelSliceColumns`): the
    /// same bits as transforming all of U first, forward and dX, with partial panels (40 and 24
    /// rows), whole panels and slices of 8 and 16 columns (24 = 16 + 8, 40 = 16 + 16 + 8), on 1
    /// and 2 threads; with the tiles in parts, and the 64 matrices in 2 or 4 parts, on up to 5;
    /// with the panels' transform stored directly (the default) and staged.
    @Test func panelByPanelGivesTheSameBits() {
        let g = Conv3dGeometry(inChannels: 24, outChannels: 40, kernel: 3, stride: 1, padding: 1)
        let s = Shape5(n: 1, c: 24, d: 4, h: 6, w: 10)
        let x = uniformTensor(s.dims, seed: 95), w = uniformTensor(g.weightShape, seed: 96, -0.1, 0.1)
        let dy = uniformTensor([1, 40, 4, 6, 10], seed: 97)
        func run(panels: Bool, threads: Int, slice: Int? = nil, parts: Int? = nil, matrixParts: Int = 0,
                 staged: Int = 0) -> [Float] {
            ThreadSettings.with(parallel: threads, blas: threads) {
                ConvTuning.with(.panelStaging, staged) {
                ConvTuning.with(.panelParts, matrixParts) {
                ConvTuning.with(.panelTileParts, parts ?? 0) {
                WinogradConv.$panelSliceColumns.withValue(slice) {
                WinogradConv.$transformsPanelsInTheGEMM.withValue(panels) {
                    WinogradGEMM.choice.with(.packed) {
                        let ws = ConvWorkspace()
                        let y = Tensor(zeros: dy.shape), dx = Tensor(zeros: s.dims)
                        winogradForward(y: y, x: x, weight: w, geometry: g, buffers: ws.winograd)
                        winogradBackward(dX: dx, dWeight: nil, dY: dy, x: x, weight: w, geometry: g, buffers: ws.winograd)
                        return y.array + dx.array
                    }
                }
                }
                }
                }
                }
            }
        }
        let whole = run(panels: false, threads: 1)
        #expect(whole.allSatisfy(\.isFinite) && whole.contains { $0 != 0 })
        func differing(_ a: [Float]) -> Int { zip(a, whole).filter { $0.bitPattern != $1.bitPattern }.count }
        for slice in [nil, 0, 8, 16] {
            for threads in [1, 2] {
                #expect(differing(run(panels: true, threads: threads, slice: slice)) == 0,
                        "slice \(String(describing: slice)), \(threads) threads: of \(whole.count) entries these differ")
            }
        }
        // Each panel's 64 matrices in 2 or 4 parts, alone and with tile parts, on 1 to 3 threads.
        for matrixParts in [1, 2, 4] {
            for (threads, slice, parts) in [(1, nil, nil), (2, nil, nil), (2, 8, nil), (3, 16, 3), (2, nil, 2), (5, nil, 2)] as [(Int, Int?, Int?)] {
                #expect(differing(run(panels: true, threads: threads, slice: slice, parts: parts, matrixParts: matrixParts)) == 0,
                        "\(matrixParts) matrix parts, \(String(describing: parts)) tile parts, slice \(String(describing: slice)), \(threads) threads")
            }
        }
        // Each panel's 30 tiles (rows of 5) in parts, some cut inside a row: the same bits.
        for parts in [2, 3, 4, 7] {
            for (threads, slice) in [(1, nil), (2, 8), (3, nil), (3, 16)] as [(Int, Int?)] {
                #expect(differing(run(panels: true, threads: threads, slice: slice, parts: parts)) == 0,
                        "\(parts) parts, slice \(String(describing: slice)), \(threads) threads")
            }
        }
        // The panels' transform staged and copied out instead of stored directly (`panel-staging`).
        for (threads, slice, matrixParts) in [(1, nil, 0), (2, 8, 0), (3, 16, 2), (5, nil, 4)] as [(Int, Int?, Int)] {
            #expect(differing(run(panels: true, threads: threads, slice: slice, matrixParts: matrixParts, staged: 1)) == 0,
                    "staged, \(matrixParts) matrix parts, slice \(String(describing: slice)), \(threads) threads")
        }
    }

    /// The one-block phase's cut: nothing on 2 threads; where the panels leave workers idle,
    /// matrix parts first (they repeat a tenth of the work where a tile part repeats a third), tile
    /// parts of at least 8 tiles beyond 4 matrix parts; a forced value for one of the two.
    @Test func panelCutFillsIdleWorkersWithMatrixPartsFirst() {
        func cut(_ panels: Int, _ tiles: Int, _ workers: Int) -> (Int, Int) {
            let c = WinogradConv.panelCut(panels: panels, tiles: tiles, workers: workers)
            return (c.matrixParts, c.tileParts)
        }
        #expect(cut(16, 32, 2) == (1, 1))    // layer3 at AVX2 here
        #expect(cut(8, 32, 2) == (1, 1))     // layer3 at AVX-512 here
        #expect(cut(1, 32, 1) == (1, 1))
        #expect(cut(32, 32, 16) == (1, 1))
        #expect(cut(16, 4, 16) == (1, 1))    // layer4 at AVX-512, 16 cores
        #expect(cut(8, 32, 16) == (2, 1))    // layer3 at AVX-512, 16 cores
        #expect(cut(16, 4, 64) == (4, 1))    // layer4, 64 cores: its 4 tiles make no tile parts
        #expect(cut(8, 32, 64) == (4, 2))    // layer3, 64 cores
        #expect(cut(1, 32, 16) == (4, 4))
        #expect(cut(8, 12, 64) == (4, 1))    // tile parts would be under 8 tiles
        #expect(ConvTuning.with(.panelTileParts, 5) { cut(32, 32, 2) } == (1, 5))
        #expect(ConvTuning.with(.panelParts, 2) { cut(32, 32, 2) } == (2, 1))
        #expect(ConvTuning.with(.panelParts, 1) { cut(8, 32, 16) } == (1, 2))
    }

    /// The rule: with the packed GEMM, F(2,3) from 8 tiles per sample whatever the channels (layer4
    /// at 64×128×128: 32 tiles); with OpenBLAS's, only when U is at most 1 MiB per tile.
    @Test func ruleFollowsTheGEMM() {
        let layer4 = Conv3dGeometry(inChannels: 512, outChannels: 512, kernel: 3, stride: 1, padding: 1)
        let input = Shape5(n: 1, c: 512, d: 4, h: 8, w: 8)
        ConvAlgorithm.choice.with(.winograd) {
            #expect(WinogradGEMM.choice.with(.packed) { WinogradConv.isUsed(for: layer4, input: input) })
            #expect(!WinogradGEMM.choice.with(.openBLAS) { WinogradConv.isUsed(for: layer4, input: input) })
            // 6 tiles per sample: direct, whatever the batch (a sample's algorithm must not depend
            // on how the global batch is split over ranks and micro-batches).
            for n in [1, 2, 4] {
                let tiny = Shape5(n: n, c: 512, d: 2, h: 4, w: 6)
                #expect(!WinogradGEMM.choice.with(.packed) { WinogradConv.isUsed(for: layer4, input: tiny) })
            }
        }
        // dW by Winograd wherever the forward is with the packed GEMM, by the fused kernel at every
        // tile count (with the tuning setting fused-weight-gradient=0, OpenBLAS's GEMMs from 64
        // tiles per sample); with OpenBLAS's GEMMs from 64 tiles per sample. Whatever the batch.
        let layer1 = Conv3dGeometry(inChannels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1)
        ConvAlgorithm.choice.with(.winograd) {
            for n in [1, 2, 3] {
                let (small, large) = (Shape5(n: n, c: 64, d: 4, h: 8, w: 8), Shape5(n: n, c: 64, d: 8, h: 8, w: 8))
                WinogradGEMM.choice.with(.openBLAS) {
                    #expect(!WinogradConv.usesWinogradWeightGradient(for: layer1, input: small))
                    #expect(WinogradConv.usesWinogradWeightGradient(for: layer1, input: large))
                }
                WinogradGEMM.choice.with(.packed) {
                    #expect(WinogradConv.usesWinogradWeightGradient(for: layer1, input: small))
                    #expect(WinogradConv.usesFusedWeightGradient(input: small))
                    #expect(WinogradConv.usesWinogradWeightGradient(for: layer1, input: large))
                    #expect(WinogradConv.usesFusedWeightGradient(input: large))
                    ConvTuning.with(.fusedWeightGradient, 0) {   // the rule before: fused below 64 tiles
                        #expect(WinogradConv.usesFusedWeightGradient(input: small))
                        #expect(!WinogradConv.usesFusedWeightGradient(input: large))
                    }
                    #expect(!WinogradConv.usesWinogradWeightGradient(for: layer1, input: Shape5(n: n, c: 64, d: 2, h: 4, w: 6)))
                }
            }
        }
        // An empty batch (a rank with no case in a step) goes direct, which handles it.
        #expect(!WinogradGEMM.choice.with(.packed) {
            WinogradConv.isUsed(for: layer4, input: Shape5(n: 0, c: 512, d: 4, h: 8, w: 8))
        })
        #expect(WinogradGEMM(rawValue: "openblas") == .openBLAS && WinogradGEMM(rawValue: "packed") == .packed)
    }
}
