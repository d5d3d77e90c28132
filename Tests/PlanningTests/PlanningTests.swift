import Foundation
import Planning
import Testing

/// Hand-computed checks of the planner's arithmetic (Docs/scaling.md, "The model").
struct CollectiveCostTests {
    let net = NetworkModel(name: "test", latency: 1e-5, bandwidth: 1e9)

    @Test func oneRankCommunicatesNothing() {
        #expect(CollectiveCost.ringAllreduce(bytes: 254e6, ranks: 1, network: net) == 0)
        #expect(CollectiveCost.smallAllreduce(bytes: 8200, ranks: 1, network: net) == 0)
    }

    @Test func ringOnFourRanksSendsTwoChunksPerStep() {
        // 8 MiB on 4 ranks: segments of 2 MiB = 2 messages of 1 MiB; 6 steps.
        // 6 · 2 · 10 µs + 6/4 · 8 388 608 B / 1 GB/s = 120 µs + 12 582 912 ns.
        let t = CollectiveCost.ringAllreduce(bytes: 8_388_608, ranks: 4, network: net)
        #expect(abs(t - 0.012_702_912) < 1e-12)
    }

    @Test func ringOnManyRanksIsLatencyBound() {
        // 25 MiB on 1024 ranks: 25 KiB segments, one message per step; 2046 steps.
        let bytes = 25.0 * 1_048_576
        let t = CollectiveCost.ringAllreduce(bytes: bytes, ranks: 1024, network: net)
        #expect(abs(t - (2046 * 1e-5 + 2046.0 / 1024 * bytes / 1e9)) < 1e-12)
        #expect(abs(t - 0.072_837_6) < 1e-9)
    }

    @Test func smallAllreduceTakesCeilLog2Rounds() {
        let m = 1000.0, round = 1e-5 + 1000 / 1e9
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 2, network: net) - round) < 1e-15)
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 5, network: net) - 3 * round) < 1e-15)
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 8, network: net) - 3 * round) < 1e-15)
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 1024, network: net) - 10 * round) < 1e-15)
    }
}

struct StepModelTests {
    /// Two units: an early one (1 Mi floats, 4 MiB) and a late one (4 Mi floats, 16 MiB), each
    /// 1 GFLOP forward and 1 GFLOP backward per case, at 1 GFLOP/s; buckets of 10 MiB.
    func twoUnits(network: NetworkModel, batchNorm: [Int] = []) -> StepModel {
        let early = GradientUnit(name: "early", tensorElements: [1 << 20], forwardFLOPs: 1e9, backwardFLOPs: 1e9, batchNormChannels: batchNorm)
        let late = GradientUnit(name: "late", tensorElements: [4 << 20], forwardFLOPs: 1e9, backwardFLOPs: 1e9, batchNormChannels: batchNorm)
        return StepModel(units: [early, late], trainingFLOPS: 1e9, inferenceFLOPS: 2e9, adamSeconds: 0.25,
                         bucketBytes: 10 << 20, network: network)
    }

    @Test func bucketsFollowBackwardOrder() {
        let m = twoUnits(network: .infiniband)
        // Backward meets `late` first: 16 MiB ≥ 10 MiB closes bucket 0 halfway through backward;
        // the 4 MiB of `early` make the last bucket, ready when backward ends.
        #expect(m.buckets == [StepModel.Bucket(bytes: 16 << 20, readyFraction: 0.5), StepModel.Bucket(bytes: 4 << 20, readyFraction: 1)])
    }

    @Test func oneRankIsComputeAndAdamOnly() {
        let s = twoUnits(network: .tenGigabitEthernet, batchNorm: [64]).step(batch: 3, ranks: 1)
        #expect(s.gradientAllreduce == 0 && s.syncCollectives == 0 && s.exposedOverlapped == 0)
        #expect(s.forward == 6 && s.backward == 6)          // 3 cases × 2 GFLOP at 1 GFLOP/s
        #expect(s.overlapped == 12.25 && s.sequential == 12.25)
    }

    @Test func computeShrinksWithTheBusiestSharePerRankButNotBelowOneCase() {
        let m = twoUnits(network: .infiniband)
        #expect(m.step(batch: 20, ranks: 3).share == 7)     // ⌈20/3⌉
        #expect(m.step(batch: 20, ranks: 3).forward == 14)
        let wide = m.step(batch: 20, ranks: 32)
        #expect(wide.share == 1 && wide.idleRanks == 12 && wide.forward == 2)
    }

    @Test func overlapHidesAllButTheLastBucketUntilTheFirstOutlastsTheRestOfBackward() {
        // Batch 1: backward is 2 s at every R; bucket 0 is ready at 1 s and must finish by 2 s.
        // Its ring time is 2(R−1)/R · 16 MiB / β with α = 0, β = 20 MB/s: 0.839 s at R = 2,
        // 1.118 s at R = 3, so communication stops hiding at R = 3.
        let m = twoUnits(network: NetworkModel(name: "slow", latency: 0, bandwidth: 2e7))
        let two = m.step(batch: 1, ranks: 2)
        #expect(two.hidden)
        #expect(abs(two.exposedOverlapped - 4_194_304 / 2e7) < 1e-12)       // the last bucket only
        let three = m.step(batch: 1, ranks: 3)
        #expect(!three.hidden)
        // Bucket 0 ends at 1 + 4/3 · 16 777 216 / 2e7; bucket 1 follows: exposed = that + 4/3 · 4 194 304 / 2e7 − 2.
        let expected = 1 + 4.0 / 3 * 16_777_216 / 2e7 + 4.0 / 3 * 4_194_304 / 2e7 - 2
        #expect(abs(three.exposedOverlapped - expected) < 1e-12)
        #expect(m.communicationStopsHiding(batch: 1, maxRanks: 1024) == 3)
        // Without overlap the whole all-reduce is added.
        #expect(abs(three.sequential - (2 + 2 + three.syncCollectives + three.gradientAllreduce + 0.25)) < 1e-12)
        // No batch norms: the loss sums (40 B) and the shares' gather (16 B), ⌈log₂ 3⌉ = 2 rounds each.
        #expect(abs(three.syncCollectives - 2 * (40 + 16) / 2e7) < 1e-15)
    }

    @Test func fastNetworkHidesEverywhere() {
        let m = twoUnits(network: NetworkModel(name: "fast", latency: 0, bandwidth: 1e12))
        #expect(m.communicationStopsHiding(batch: 1, maxRanks: 64) == nil)
    }

    @Test func eachBatchNormMakesTwoSmallAllreduces() {
        let net = NetworkModel(name: "test", latency: 1e-5, bandwidth: 1e9)
        let m = twoUnits(network: net, batchNorm: [64])
        // Two units × one batch norm × (forward, backward) + loss sums + shares' gather.
        let sizes = m.smallCollectives(batch: 4, ranks: 2)
        let expected: [Double] = [1032, 1024, 1032, 1024, 40, 24]   // 8·(1 + 2·64), 16·64, …, 8·5, 8·(1 + ⌈4/2⌉)
        #expect(sizes == expected)
        let s = m.step(batch: 4, ranks: 2)
        #expect(abs(s.syncCollectives - (6 * 1e-5 + sizes.reduce(0, +) / 1e9)) < 1e-15)
    }
}

struct RunPlanTests {
    @Test func thePapersCohortHas88StepsPerEpoch() {
        // 2186 scans, 5 folds: 437 validation, 1749 training, ⌈1749 / 20⌉ = 88 steps.
        let shape = RunShape(cases: 2186, folds: 5, epochs: 20, batch: 20)
        #expect(shape.validationCases == 437 && shape.trainingCases == 1749 && shape.stepsPerEpoch == 88)
    }

    @Test func validationRunsOnRankZeroAloneAndCrossValidationMultiplies() {
        let unit = GradientUnit(name: "u", tensorElements: [1000], forwardFLOPs: 1e9, backwardFLOPs: 2e9, batchNormChannels: [])
        let m = StepModel(units: [unit], trainingFLOPS: 1e9, inferenceFLOPS: 2e9, adamSeconds: 0, bucketBytes: 1 << 20,
                          network: NetworkModel(name: "free", latency: 0, bandwidth: 1e15))
        let shape = RunShape(cases: 10, folds: 2, epochs: 3, batch: 4)   // 5 training cases: 2 steps; 5 validation
        let one = m.estimate(shape, ranks: 1), four = m.estimate(shape, ranks: 4)
        #expect(one.validationSeconds == 2.5 && four.validationSeconds == 2.5)   // 5 × 1 GFLOP at 2 GFLOP/s
        #expect(one.epochOverlapped == 2 * 12 + 2.5)                              // 2 steps × 4 cases × 3 s
        #expect(abs(four.epochOverlapped - (2 * 3 + 2.5)) < 1e-9)                 // communication ~1e-12 s
        #expect(one.crossValidationOverlapped == 2 * 2 * 3 * one.epochOverlapped)
        #expect(one.speedup == 1)
        #expect(abs(four.speedup - 26.5 / 8.5) < 1e-9)                            // not 4: validation is serial
    }

    @Test func profileScalesComputeLinearlyAndAdamNotAboveMeasured() throws {
        let p = MachineProfile(machine: "m", date: "d", threads: 2, sgemmGFLOPS: 100, efficiency: 0.5, adamSecondsPerMillionParameters: 0.002)
        #expect(p.flops(threads: 2) == 50e9 && p.flops(threads: 8) == 200e9)
        #expect(p.adamSeconds(parameters: 1_000_000, threads: 8) == 0.002)
        #expect(p.adamSeconds(parameters: 1_000_000, threads: 1) == 0.004)
        let round = try JSONDecoder().decode(MachineProfile.self, from: JSONEncoder().encode(p))
        #expect(round == p)
    }
}
