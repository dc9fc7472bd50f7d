// Support for `Tools/test --sanitize address`.
//
// LeakSanitizer's exit-time check is turned off for the test runner process only: the
// Swift runtime keeps a weakly referenced object's side-table address shifted inside
// the object's refcount word, which LeakSanitizer cannot recognise as a pointer, so at
// exit it reports every weak side table (Foundation's Process.run(), XCTest's
// awaitUsingExpectation) as a direct leak and XCTest's whole tree of test cases and
// their data behind them as indirect leaks: ~1 MB of false positives that fail the run.
// The binaries the pair tests start (zc-send, zc-recv) are separate processes and keep
// the check: a leak there still fails the test that ran them (exit status 23).
//
// LeakSanitizer calls this weak hook at exit when it is linked in; otherwise it is unused.
@_cdecl("__lsan_is_turned_off")
public func zcTestRunnerDisablesLeakCheck() -> CInt { 1 }
