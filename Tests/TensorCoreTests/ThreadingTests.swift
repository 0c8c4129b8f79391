import Foundation
import Synchronization
import XCTest
@testable import TensorCore

final class ThreadingTests: XCTestCase {
    override func tearDown() {
        Threading.setThreads(ProcessInfo.processInfo.activeProcessorCount)
    }

    func testBalancedLoopRunsEveryItemExactlyOnce() {
        for threads in [1, 2, 3, 5] {
            Threading.setThreads(threads)
            for count in [0, 1, 2, 7, 100] {
                let visits = Mutex([Int](repeating: 0, count: count))
                let wideRanges = Mutex(0)
                Threading.parallelForBalanced(count) { range in
                    if range.count != 1 { wideRanges.withLock { $0 += 1 } }
                    visits.withLock { for item in range { $0[item] += 1 } }
                }
                XCTAssertEqual(visits.withLock { $0 }, [Int](repeating: 1, count: count), "threads \(threads), count \(count)")
                // Several threads get one item per call; one thread runs the whole range inline.
                XCTAssertEqual(wideRanges.withLock { $0 }, threads == 1 && count > 1 ? 1 : 0, "threads \(threads), count \(count)")
            }
        }
    }

    /// The first item blocks until every other item is done. A fixed split would leave the
    /// rest of its thread's share undone and time out; here the other thread takes them.
    func testBalancedLoopHandsAStalledThreadsItemsToTheOthers() {
        Threading.setThreads(2)
        let count = 8
        let done = Atomic<Int>(0)
        let stalledItemSawTheRest = Atomic<Bool>(false)
        Threading.parallelForBalanced(count) { range in
            if range.lowerBound == 0 {
                let deadline = Date().addingTimeInterval(20)
                while done.load(ordering: .acquiring) < count - 1, Date() < deadline { usleep(100) }
                stalledItemSawTheRest.store(done.load(ordering: .acquiring) == count - 1, ordering: .releasing)
            }
            done.add(range.count, ordering: .acquiringAndReleasing)
        }
        XCTAssertTrue(stalledItemSawTheRest.load(ordering: .acquiring))
        XCTAssertEqual(done.load(ordering: .acquiring), count)
    }
}
