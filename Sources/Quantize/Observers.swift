import TensorCore

/// Estimates an activation's range from the calibration batches it sees.
public protocol RangeObserver: Sendable {
    mutating func observe(_ values: Tensor)
    /// The range to quantize to; nil before any finite value was seen.
    func range() -> (minimum: Float, maximum: Float)?
}

extension ObserverKind {
    /// A fresh observer of this kind.
    public func make() -> any RangeObserver {
        switch self {
        case .minmax: MinMaxObserver()
        case .movingAverage: MovingAverageMinMaxObserver()
        case .histogram: HistogramObserver()
        }
    }
}

/// The finite extremes of a tensor (infinities and NaNs ignored, as PyTorch's observers do).
///
/// Large tensors are scanned in up to eight parts on the compute threads. The parts depend
/// on the size only, and are combined in order, so that the result (down to the sign of a
/// zero extreme) does not depend on the thread count.
func finiteExtremes(_ values: Tensor) -> (Float, Float)? {
    let count = values.count
    let parts = Swift.max(1, Swift.min(8, count / 65_536))
    var extremes = [(Float, Float)](repeating: (.infinity, -.infinity), count: parts)
    values.withUnsafeBufferPointer { buffer in
        extremes.withUnsafeMutableBufferPointer { extremes in
            let (buffer, extremes) = (UncheckedSendable(buffer), UncheckedSendable(extremes))
            forEachPart(of: count, parts: parts) { part, range in
                var low = Float.infinity, high = -Float.infinity
                for value in buffer.value[range] where value.isFinite {
                    low = Swift.min(low, value)
                    high = Swift.max(high, value)
                }
                extremes.value[part] = (low, high)
            }
        }
    }
    let (low, high) = extremes.dropFirst().reduce(extremes[0]) { (Swift.min($0.0, $1.0), Swift.max($0.1, $1.1)) }
    return low <= high ? (low, high) : nil
}

/// `body(part, range)` for `parts` contiguous shares of 0..<count, on the compute threads.
private func forEachPart(of count: Int, parts: Int, _ body: (Int, Range<Int>) -> Void) {
    Threading.parallelFor(parts) { range in
        for part in range { body(part, (count * part / parts)..<(count * (part + 1) / parts)) }
    }
}

/// The extreme values over every batch.
public struct MinMaxObserver: RangeObserver {
    var extremes: (Float, Float)?
    public init() {}

    public mutating func observe(_ values: Tensor) {
        guard let (low, high) = finiteExtremes(values) else { return }
        extremes = extremes.map { (Swift.min($0.0, low), Swift.max($0.1, high)) } ?? (low, high)
    }

    public func range() -> (minimum: Float, maximum: Float)? { extremes.map { ($0.0, $0.1) } }
}

/// PyTorch's MovingAverageMinMaxObserver: the first batch sets the range, later batches
/// move it by `averagingConstant` towards theirs.
public struct MovingAverageMinMaxObserver: RangeObserver {
    public var averagingConstant: Float = 0.01
    var extremes: (Float, Float)?
    public init() {}

    public mutating func observe(_ values: Tensor) {
        guard let (low, high) = finiteExtremes(values) else { return }
        guard let (currentLow, currentHigh) = extremes else { extremes = (low, high); return }
        extremes = (currentLow + averagingConstant * (low - currentLow), currentHigh + averagingConstant * (high - currentHigh))
    }

    public func range() -> (minimum: Float, maximum: Float)? { extremes.map { ($0.0, $0.1) } }
}

/// PyTorch's HistogramObserver (torch.ao.quantization, 2.x): a 2048-bin histogram over the
/// running range, re-binned (16× upsampling) when a batch widens the range; the range is
/// chosen by the non-linear search that approximately minimises the L2 quantization error
/// for 256 levels.
public struct HistogramObserver: RangeObserver {
    public let bins = 2048
    let destinationBins = 256
    let upsampleRate = 16
    var histogram: [Double]
    var low = Float.infinity, high = -Float.infinity

    public init() { histogram = [Double](repeating: 0, count: 2048) }

    public mutating func observe(_ values: Tensor) {
        guard let (batchLow, batchHigh) = finiteExtremes(values) else { return }
        if low > high {
            low = batchLow; high = batchHigh
            histogram = Self.histc(values, bins: bins, low: low, high: high)
            return
        }
        let newLow = Swift.min(low, batchLow), newHigh = Swift.max(high, batchHigh)
        let update = Self.histc(values, bins: bins, low: newLow, high: newHigh)
        if newLow == low && newHigh == high {
            for i in 0..<bins { histogram[i] += update[i] }
            return
        }
        var combined = update
        if low == high {
            // The old histogram is a single spike at `low`.
            let total = histogram.reduce(0, +)
            let spike = Self.histc(Tensor(shape: [1], scalars: [low]), bins: bins, low: newLow, high: newHigh)
            for i in 0..<bins { combined[i] += spike[i] * total }
        } else {
            let upscaled = upscale(from: low, high, to: newLow, newHigh)
            for i in 0..<bins { combined[i] += upscaled[i] }
        }
        histogram = combined
        low = newLow; high = newHigh
    }

    /// torch.histc in float32: bin edges from linspace, position by linear interpolation
    /// corrected against the edges; values outside [low, high] (and NaNs) are dropped.
    ///
    /// Complexity: O(n + bins). Parts of at least 64 Ki values are counted on separate
    /// threads. The loop has no data-dependent branch (a mispredicted one per value cost
    /// more than the rest of the work): the correction reads padded edges, the count goes to
    /// a padded slot folded into the end bins afterwards, and neighbouring values go to two
    /// count arrays so that runs in one bin (the zeros after a ReLU) do not wait on each
    /// other's increments. Counts are integers, summed at the end (exact).
    static func histc(_ values: Tensor, bins: Int, low: Float, high: Float) -> [Double] {
        if low == high {
            // torch.histc widens an empty range by ±1.
            return histc(values, bins: bins, low: low - 1, high: high + 1)
        }
        // The edges with −∞ before and +∞ after: torch's three-edge window around a
        // position, clipped to the edges, then needs no clipping (a leading −∞ counts as
        // the edge the clipped window starts after, a trailing +∞ as none).
        let edges = [-Float.infinity] + linspace(low, high, count: bins + 1) + [Float.infinity, Float.infinity]
        // Slot s counts bin s − 1; slots 0 and bins + 1, bins + 2 are folded into the end bins.
        // The stride keeps the two arrays' hot slots off each other's 4 KiB aliases.
        let count = values.count, lanes = 2, stride = bins + 16
        let parts = Swift.max(1, Swift.min(Threading.threads, count / 65_536))
        var slots = [UInt32](repeating: 0, count: parts * lanes * stride)
        let binCount = Float(bins)
        values.withUnsafeBufferPointer { buffer in
            edges.withUnsafeBufferPointer { edges in
                slots.withUnsafeMutableBufferPointer { slots in
                    let (buffer, edges, slots) = (UncheckedSendable(buffer), UncheckedSendable(edges), UncheckedSendable(slots))
                    forEachPart(of: count, parts: parts) { part, range in
                        let counts = slots.value.baseAddress! + part * lanes * stride
                        let edges = edges.value.baseAddress! + 1, values = buffer.value.baseAddress!
                        for i in range {
                            let value = values[i]
                            guard value >= low && value <= high else { continue }
                            // At most `bins` for values in [low, high]; the min keeps the
                            // reads below inside the padding whatever the rounding, and
                            // (its NaN operand second) turns the NaN of a range too wide
                            // for float32 (∞ / ∞) into `bins` instead of a trap.
                            let position = Int(Swift.min(binCount, (value - low) * binCount / (high - low)))
                            // upper_bound over edges[position − 1 ..< position + 2], minus one,
                            // plus one for the slot.
                            let a = edges[position &- 1] <= value ? 1 : 0
                            let b = a & (edges[position] <= value ? 1 : 0), c = b & (edges[position &+ 1] <= value ? 1 : 0)
                            counts[(i & (lanes - 1)) &* stride &+ position &- 1 &+ a &+ b &+ c] &+= 1
                        }
                    }
                }
            }
        }
        var histogram = [Double](repeating: 0, count: bins)
        for array in 0..<(parts * lanes) {
            let base = array * stride
            for slot in 0...(bins + 2) { histogram[Swift.min(Swift.max(slot - 1, 0), bins - 1)] += Double(slots[base + slot]) }
        }
        return histogram
    }

    /// torch.linspace for float32: the first half counts up from the start, the second half
    /// down from the end.
    static func linspace(_ start: Float, _ end: Float, count: Int) -> [Float] {
        let step = (end - start) / Float(count - 1)
        let half = count / 2
        return (0..<count).map { i in i < half ? start + step * Float(i) : end - step * Float(count - 1 - i) }
    }

    /// HistogramObserver._upscale_histogram: spreads each old bin over `upsampleRate`
    /// sub-bins and re-buckets their mid-points into the new range.
    func upscale(from oldLow: Float, _ oldHigh: Float, to newLow: Float, _ newHigh: Float) -> [Double] {
        let fine = bins * upsampleRate
        let binSize = (oldHigh - oldLow) / Float(fine)
        let mids = Self.linspace(oldLow, oldHigh, count: fine + 1)
        let boundaries = Self.linspace(newLow, newHigh, count: bins + 1)
        var result = [Double](repeating: 0, count: bins)
        for i in 0..<fine {
            let mid = mids[i] + 0.5 * binSize
            // bucketize(right=True) − 1: the number of boundaries ≤ mid, minus one.
            var lo = 0, hi = boundaries.count
            while lo < hi { let m = (lo + hi) / 2; if boundaries[m] <= mid { lo = m + 1 } else { hi = m } }
            let bucket = Swift.min(Swift.max(lo - 1, 0), bins - 1)
            result[bucket] += histogram[i / upsampleRate] / Double(upsampleRate)
        }
        return result
    }

    public func range() -> (minimum: Float, maximum: Float)? {
        guard low <= high else { return nil }
        let (start, end) = nonLinearSearch()
        let binWidth = (high - low) / Float(bins)
        return (low + binWidth * Float(start), low + binWidth * Float(end + 1))
    }

    /// HistogramObserver._non_linear_param_search.
    func nonLinearSearch() -> (Int, Int) {
        let total = histogram.reduce(0, +)
        var cumulative = histogram
        for i in 1..<bins { cumulative[i] += cumulative[i - 1] }
        let stepSize = 1e-5
        var alpha = 0.0, beta = 1.0
        var startBin = 0, endBin = bins - 1
        var normMin = Double.infinity
        while alpha < beta {
            let nextAlpha = alpha + stepSize, nextBeta = beta - stepSize
            var l = startBin, r = endBin
            while l < endBin && cumulative[l] < nextAlpha * total { l += 1 }
            while r > startBin && cumulative[r] > nextBeta * total { r -= 1 }
            var nextStart = startBin, nextEnd = endBin
            if l - startBin > endBin - r {
                nextStart = l; alpha = nextAlpha
            } else {
                nextEnd = r; beta = nextBeta
            }
            if nextStart == startBin && nextEnd == endBin { continue }
            let norm = quantizationError(nextStart, nextEnd)
            if norm > normMin { break }
            normMin = norm
            startBin = nextStart; endBin = nextEnd
        }
        return (startBin, endBin)
    }

    /// HistogramObserver._compute_quantization_error (L2 norm of uniformly spread values).
    func quantizationError(_ startBin: Int, _ endBin: Int) -> Double {
        let binWidth = (Double(high) - Double(low)) / Double(bins)
        let dstWidth = binWidth * Double(endBin - startBin + 1) / Double(destinationBins)
        if dstWidth == 0 { return 0 }
        func norm(_ begin: Double, _ end: Double, _ density: Double) -> Double { density * (end * end * end - begin * begin * begin) / 3 }
        var total = 0.0
        let maxDst = Double(destinationBins - 1)
        for bin in 0..<bins where histogram[bin] != 0 {
            let density = histogram[bin] / binWidth
            let begin = Double(bin - startBin) * binWidth, end = begin + binWidth
            let dstOfBegin = Swift.min(Swift.max((begin / dstWidth).rounded(.down), 0), maxDst)
            let dstOfEnd = Swift.min(Swift.max((end / dstWidth).rounded(.down), 0), maxDst)
            let beginCentre = (dstOfBegin + 0.5) * dstWidth
            total += norm(begin - beginCentre, dstWidth / 2, density)
            total += (dstOfEnd - dstOfBegin - 1) * norm(-dstWidth / 2, dstWidth / 2, density)
            let endCentre = dstOfEnd * dstWidth + dstWidth / 2
            total += norm(-dstWidth / 2, end - endCentre, density)
        }
        return total
    }
}
