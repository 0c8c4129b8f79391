import XCTest
@testable import TensorCore

final class BufferPoolTests: XCTestCase {
    func testFreedBuffersAreReusedBySize() {
        let pool = BufferPool()
        let bytes = 1 << 20
        let first = pool.take(bytes: bytes)
        pool.give(first, bytes: bytes)
        XCTAssertEqual(pool.cachedBytes, bytes)
        XCTAssertEqual(pool.take(bytes: bytes), first, "a freed buffer of the same size is handed out again")
        XCTAssertEqual(pool.cachedBytes, 0)
        pool.give(first, bytes: bytes)
        pool.limitBytes = 0
    }

    /// A pool filled with one size must still take in a new size, dropping the sizes used
    /// longest ago, or every later allocation of the new size would touch fresh pages.
    func testFullPoolEvictsLeastRecentlyUsedSizes() {
        let pool = BufferPool()
        let (old, new) = (1 << 20, 3 << 19)
        pool.limitBytes = 4 << 20
        let stale = (0..<4).map { _ in pool.take(bytes: old) }
        stale.forEach { pool.give($0, bytes: old) }
        XCTAssertEqual(pool.cachedBytes, 4 << 20)
        let fresh = pool.take(bytes: new)
        pool.give(fresh, bytes: new)
        XCTAssertEqual(pool.take(bytes: new), fresh, "the new size is cached, not sent back to the system")
        XCTAssertLessThanOrEqual(pool.cachedBytes, pool.limitBytes)
        XCTAssertEqual(pool.cachedBytes, 0, "the stale size was released as a whole")
        pool.give(fresh, bytes: new)
        pool.limitBytes = 0
        XCTAssertEqual(pool.cachedBytes, 0)
    }
}

extension BufferPoolTests {
    /// A request takes the smallest cached buffer of at least its size and below twice it,
    /// and the buffer goes back under its own size.
    func testRequestsTakeTheBestFittingLargerBuffer() {
        let pool = BufferPool()
        let (large, medium) = (1 << 20, 3 << 18)
        let buffer = pool.take(bytes: large)
        pool.give(buffer, bytes: large)
        XCTAssertEqual(pool.take(bytes: medium), buffer, "a 768 KiB request reuses the free 1 MiB buffer")
        XCTAssertEqual(pool.cachedBytes, 0)
        pool.give(buffer, bytes: medium)
        XCTAssertEqual(pool.cachedBytes, large, "cached under its real size")
        let small = pool.take(bytes: 1 << 19)
        XCTAssertNotEqual(small, buffer, "a buffer twice the request or more is not handed out")
        pool.give(small, bytes: 1 << 19)
        XCTAssertEqual(pool.take(bytes: large), buffer, "the 1 MiB buffer serves a 1 MiB request again")
        pool.give(buffer, bytes: large)
        pool.limitBytes = 0
        XCTAssertEqual(pool.cachedBytes, 0)
    }
}
