import Testing
@testable import Training

@Suite struct TrainConfigTests {
    @Test func yamlOverridesDefaults() throws {
        let c = try TrainConfig.parse("epochs: 3\nbatch: 4\nlr: 1.0e-3\nattention: off\nsampling: size-balanced\nweight_decay: 0\n", source: "t.yaml")
        #expect(c.epochs == 3 && c.batch == 4 && c.lr == 1e-3 && !c.attention && c.sampling == .sizeBalanced && c.weightDecay == 0)
        #expect(c.lrStep == 5 && c.lrGamma == 0.1 && c.attentionWeight == 0.5)
    }

    func message(_ yaml: String) -> String {
        do { _ = try TrainConfig.parse(yaml, source: "c.yaml"); return "no error" } catch { return "\(error)" }
    }

    @Test func unknownKeysAndBadValuesNameTheKey() {
        #expect(message("epoch: 3\n").hasPrefix("c.yaml: unknown key `epoch`; known keys: attention, attention_weight, batch,"))
        #expect(message("batch: many\n") == "c.yaml: key `batch`: expected an integer, got `many`")
        #expect(message("batch: 0\n") == "c.yaml: key `batch`: must be at least 1, got 0")
        #expect(message("sampling: random\n") == "c.yaml: key `sampling`: must be `uniform` or `size-balanced`, got `random`")
        #expect(message("fold: 7\nfolds: 5\n") == "c.yaml: key `fold`: must be -1 (no fold) or in 0..<5, got 7")
        #expect(message("- a\n- b\n") == "c.yaml: expected a mapping of `key: value` lines")
    }

    @Test func resolvedYamlRoundTrips() throws {
        var c = TrainConfig()
        c.epochs = 7
        c.sampling = .sizeBalanced
        c.seed = 42
        let back = try TrainConfig.parse(c.yaml, source: "round trip")
        #expect(back == c, "\(c.yaml)\n→\n\(back.yaml)")
        #expect(c.yaml.contains("prefetch: auto\n"))
        c.prefetch = 3
        #expect(try TrainConfig.parse(c.yaml, source: "round trip") == c)
    }

    @Test func prefetchIsAutoOrAPositiveCount() throws {
        #expect(try TrainConfig.parse("prefetch: auto\n", source: "p.yaml").prefetch == 0)
        #expect(try TrainConfig.parse("prefetch: 5\n", source: "p.yaml").prefetch == 5)
        #expect(message("prefetch: 0\n") == "c.yaml: key `prefetch`: expected `auto` or a number of cases ≥ 1, got `0`")
        #expect(message("prefetch: soon\n") == "c.yaml: key `prefetch`: expected `auto` or a number of cases ≥ 1, got `soon`")
    }

    @Test func autoPrefetchHoldsOneShareWithinItsMemory() {
        var c = TrainConfig()
        c.batch = 20
        // 64×128×128: a share of 20, 10 or 7 fits in 1 GiB.
        #expect(c.prefetchDepth(ranks: 1, voxels: 64 * 128 * 128) == 20)
        #expect(c.prefetchDepth(ranks: 2, voxels: 64 * 128 * 128) == 10)
        #expect(c.prefetchDepth(ranks: 3, voxels: 64 * 128 * 128) == 7)
        // 138×256×256 (72 MiB a case): 1 GiB holds 14, so one rank keeps 14 of its 20.
        #expect(c.prefetchDepth(ranks: 1, voxels: 138 * 256 * 256) == 14)
        // At least 2, even with more ranks than cases; an explicit count is kept as given.
        #expect(c.prefetchDepth(ranks: 40, voxels: 64) == 2)
        c.prefetch = 1
        #expect(c.prefetchDepth(ranks: 1, voxels: 64) == 1)
    }
}
