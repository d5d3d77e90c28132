// swift-tools-version:6.0
// dsan: a distributed data-parallel trainer for the Dual-Sampling Attention Network.
// The layout follows Docs/architecture.md: C bindings (C*) hold only a module map and a shim,
// each Swift module is one concern, and every module has a test target of its own.
import PackageDescription

let package = Package(
    name: "dsan",
    products: [
        .executable(name: "dsan", targets: ["dsan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C bindings: module map + shim header, nothing else.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5-serial",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        // CPUID and XGETBV as static inline functions (no library to link).
        .systemLibrary(name: "CCPUID"),

        // The CPU dsan runs on: vendor, model and usable vector extensions.
        .target(name: "CPU", dependencies: ["CCPUID"]),

        // Safe Swift wrappers.
        .target(name: "MPI", dependencies: ["CMPI"]),
        .target(name: "HDF5", dependencies: ["CHDF5"]),
        .target(name: "BLAS", dependencies: ["COpenBLAS", "CPU"]),

        // dsan's memory-bound kernels in C, one build per x86 vector ISA, chosen at start-up from
        // CPUID (Docs/performance.md, "Vector width"). Not a binding: it holds kernels, because
        // Swift has no per-function target attribute.
        .target(name: "VectorKernels"),
        // The worker pool behind `Parallel` (thread_pool.c: futexes and the pause instruction
        // have no Swift API).
        .target(name: "ThreadPool"),

        // The numerical engine.
        .target(name: "Tensor", dependencies: ["BLAS", "ThreadPool"]),
        .target(name: "NN", dependencies: ["Tensor", "BLAS", "VectorKernels"]),

        // CTData: the CT cases — NIfTI preprocessing, HDF5 shards, the cohort, synthetic cohort, folds, samplers.
        .target(name: "NIfTI", dependencies: ["CZlib"]),
        .target(name: "CTData", dependencies: ["HDF5", "Tensor", "NIfTI"]),

        // The network: ResNet3D-34 with the online attention module, losses, checkpoints.
        .target(name: "Model", dependencies: ["NN", "HDF5"]),

        // Distributed training pieces over MPI: ring all-reduce, gradient buckets.
        .target(name: "Distributed", dependencies: ["MPI", "Tensor"]),

        // Evaluation: metrics, predictions files, the dual-sampling ensemble (rule, fit, file),
        // the cross-validation tables with their t-tests. No MPI, no network.
        .target(name: "Evaluation", dependencies: ["CTData"]),

        // Training: configuration, the data-parallel trainer, run records.
        .target(name: "Training", dependencies: [
            "Model", "CTData", "Distributed", "MPI", "NN", "Evaluation",
            .product(name: "Yams", package: "Yams"),
        ]),

        // Workflows: what the commands do, as library code: the cross-validation of `dsan cv`,
        // prediction with a checkpoint or an ensemble file, and one rank of an MPI job (`MPIJob`).
        .target(name: "Workflows", dependencies: [
            "Evaluation", "Training", "Model", "CTData", "NIfTI", "HDF5", "Tensor", "Distributed", "MPI", "BLAS",
        ]),

        // Benchmarks: what `dsan bench kernels | step | io | vector | allreduce` measure, and their
        // reports (tables and JSON).
        .target(name: "Benchmarks", dependencies: [
            "BLAS", "Tensor", "NN", "VectorKernels", "Model", "CTData", "MPI", "Distributed", "Planning",
        ]),

        // Planning: the α-β model of a step, an epoch and a cross-validation on R ranks (pure arithmetic).
        .target(name: "Planning"),

        // Reports: PNG figures (ROC curves, CT slices with attention maps) and HTML pages.
        .target(name: "Report", dependencies: ["CPNG", "Evaluation", "CTData", "NIfTI"], path: "Sources/Report"),

        // Command line.
        .executableTarget(name: "dsan", dependencies: [
            "MPI", "BLAS", "Tensor", "NN", "NIfTI", "CTData", "Distributed", "Model", "Evaluation", "Training", "Workflows", "Report", "Planning",
            "Benchmarks",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Rank-side halves of the multi-rank tests, launched under mpirun by Tests/MPITests and
        // Tests/DistributedTests.
        .executableTarget(name: "dsan-mpi-checks", dependencies: ["MPI"]),
        .executableTarget(name: "dsan-ring-checks", dependencies: ["MPI", "Distributed", "Tensor"]),

        // Shared test helpers (finite differences, naive references, tolerances, finding the built
        // products and mpirun).
        .target(name: "NumericalTesting", dependencies: ["Tensor", "BLAS"], path: "Tests/NumericalTesting"),

        .testTarget(name: "MPITests", dependencies: ["MPI", "NumericalTesting"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "NumericalTesting"]),
        .testTarget(name: "BLASTests", dependencies: ["BLAS", "CPU", "NumericalTesting"]),
        .testTarget(name: "CPUTests", dependencies: ["CPU"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "NumericalTesting"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor", "NumericalTesting", "VectorKernels"]),
        // Runs the built `dsan-ring-checks` under mpirun; pure layout and bucketing tests in-process.
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "MPI", "Tensor", "NumericalTesting"]),
        .testTarget(name: "NIfTITests", dependencies: ["NIfTI", "Tensor"]),
        // Runs the built `dsan` (and `mpirun`): command-line behaviour end to end.
        .testTarget(name: "CLITests", dependencies: ["BLAS", "CTData", "NIfTI", "HDF5", "Model", "Evaluation", "Training", "Benchmarks", "NumericalTesting"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "CTData", "Tensor"]),
        .testTarget(name: "WorkflowsTests", dependencies: ["Workflows", "Evaluation", "Training", "Distributed", "MPI", "CTData", "Model", "NIfTI", "Tensor", "NumericalTesting"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "CTData", "Tensor"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "NN", "NumericalTesting", "HDF5"]),
        .testTarget(name: "CTDataTests", dependencies: ["CTData", "HDF5", "NIfTI", "NumericalTesting"]),
        .testTarget(name: "PlanningTests", dependencies: ["Planning"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "Model", "NN", "Tensor", "BLAS", "CTData", "Planning", "NumericalTesting"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Evaluation", "CTData", "NIfTI", "NumericalTesting"]),
    ],
    swiftLanguageModes: [.v5]
)
