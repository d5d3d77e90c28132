import Testing
@testable import Tensor

/// Row-major offset the long way: Σ index[i] · Π_{j>i} shape[j].
func naiveOffset(_ index: [Int], _ shape: [Int]) -> Int {
    var o = 0
    for i in index.indices {
        var stride = 1
        for j in (i + 1)..<shape.count { stride *= shape[j] }
        o += index[i] * stride
    }
    return o
}

/// Every multi-index of `shape`, last dimension fastest.
func allIndices(_ shape: [Int]) -> [[Int]] {
    var result: [[Int]] = [[]]
    for n in shape { result = result.flatMap { prefix in (0..<n).map { prefix + [$0] } } }
    return result
}

@Suite struct TensorTests {
    @Test func zerosHasShapeCountAndZeros() {
        let t = Tensor(zeros: [2, 3, 4])
        #expect(t.shape == [2, 3, 4] && t.rank == 3 && t.count == 24 && t.capacity == 24)
        #expect(t.array == [Float](repeating: 0, count: 24))
    }

    @Test func emptyAndScalarShapes() {
        let empty = Tensor(zeros: [3, 0, 5])
        #expect(empty.count == 0 && empty.array.isEmpty && empty.capacity == 1 && empty.sum() == 0)
        let scalar = Tensor(zeros: [])
        #expect(scalar.count == 1 && scalar.rank == 0)
    }

    @Test func valuesAreRowMajor() {
        let shape = [2, 3, 4, 5]
        let values = (0..<120).map { Float($0) * 0.5 - 7 }
        let t = Tensor(shape: shape, values: values)
        for index in allIndices(shape) {
            #expect(t.offset(index) == naiveOffset(index, shape))
            #expect(t[index[0], index[1], index[2], index[3]] == values[naiveOffset(index, shape)])
        }
    }

    @Test func subscriptWritesTheElementItNames() {
        let shape = [3, 2, 4]
        let t = Tensor(zeros: shape)
        for (k, index) in allIndices(shape).enumerated() { t[index[0], index[1], index[2]] = Float(k + 1) }
        // Written in row-major order, so the storage reads 1, 2, 3, …
        #expect(t.array == (1...24).map(Float.init))
    }

    @Test func repeatingFillZeroAndSum() {
        let t = Tensor(shape: [4, 5], repeating: 2.5)
        #expect(t.array.allSatisfy { $0 == 2.5 })
        #expect(t.sum() == 50)
        t.fill(-1)
        #expect(t.sum() == -20)
        t.zero()
        #expect(t.array.allSatisfy { $0 == 0 })
    }

    @Test func sumIsInDoubleLikeANaiveDoubleLoop() {
        // 10⁶ · 1 + 10⁶ small terms: a Float accumulator would lose the small ones.
        var values = [Float](repeating: 1e-4, count: 1_000_001)
        values[0] = 1e6
        let t = Tensor(shape: [values.count], values: values)
        var naive = 0.0
        for v in values { naive += Double(v) }
        #expect(t.sum() == naive)
        var floatSum: Float = 0
        for v in values { floatSum += v }
        #expect(abs(Double(floatSum) - naive) > 1, "the test data must tell Float from Double sums")
    }

    @Test func copyIsIndependentAndAssignCopiesElements() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = a.copy()
        #expect(b.shape == a.shape && b.array == a.array && b.data != a.data)
        b[0, 0] = 100
        #expect(a[0, 0] == 1)
        let c = Tensor(zeros: [6])
        c.assign(a)
        #expect(c.array == a.array && c.shape == [6])
    }

    @Test func reshapeKeepsDataWithinCapacity() {
        let t = Tensor(shape: [2, 6], values: (0..<12).map(Float.init))
        t.reshape([3, 4])
        #expect(t.shape == [3, 4] && t.count == 12 && t[2, 3] == 11 && t[1, 0] == 4)
        t.reshape([2, 2])   // fewer elements: the first four
        #expect(t.count == 4 && t.array == [0, 1, 2, 3] && t.capacity == 12)
        t.reshape([12])
        #expect(t.array == (0..<12).map(Float.init))
    }

    @Test func bufferAndDataShareStorage() {
        let t = Tensor(zeros: [5])
        t.buffer[3] = 7
        #expect(t.data[3] == 7 && t[3] == 7 && t.buffer.count == 5)
    }

    @Test func shape5() {
        let t = Tensor(zeros: [2, 3, 4, 5, 6])
        let s = t.shape5
        #expect(s == Shape5(n: 2, c: 3, d: 4, h: 5, w: 6))
        #expect(s.spatial == 120 && s.perSample == 360 && s.count == 720 && s.count == t.count)
        #expect(s.dims == [2, 3, 4, 5, 6] && s.description == "[2, 3, 4, 5, 6]")
    }

    @Test func indexTensor() {
        let i = IndexTensor(zeros: [2, 3])
        #expect(i.count == 6 && i.array == [0, 0, 0, 0, 0, 0])
        for k in 0..<6 { i.data[k] = Int32(10 * k) }
        i.reshape([3])
        #expect(i.shape == [3] && i.array == [0, 10, 20] && i.capacity == 6)
    }
}
