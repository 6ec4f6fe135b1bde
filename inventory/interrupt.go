package inventory

import (
	"context"
	"database/sql"
	"reflect"
	"sync"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// modernc.org/sqlite interrupts a statement whose context ends only while
// QueryContext runs it to its first row (its progress handler is armed
// for that call alone); database/sql closes the rows of a cancelled query
// only between rows. A statement that yields a row and then never yields
// the next (a recursive CTE filtering an endless sequence:
// `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x
// FROM c WHERE x = 1 OR x < 0`) would run forever. The Reader therefore
// interrupts its connection itself (sqlite3_interrupt) when the context of
// a running query ends. The driver exports no interrupt, so the
// connection's SQLite handle is read by reflection: when a future driver
// lays its connection out otherwise, interrupter finds no handle and only
// the driver's own cancellation remains (the tests say so).

// interrupter returns a function that interrupts the statement running on
// conn (nil when the driver's connection has no handle cip can find).
func interrupter(conn *sql.Conn) func() {
	var stop func()
	_ = conn.Raw(func(dc any) error {
		v := reflect.ValueOf(dc)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return nil
		}
		db := v.Elem().FieldByName("db")
		locker, ok := dc.(sync.Locker) // the driver's guard against Close
		if !db.IsValid() || db.Kind() != reflect.Uintptr || !ok {
			return nil
		}
		stop = func() {
			locker.Lock()
			defer locker.Unlock()
			if h := uintptr(db.Uint()); h != 0 { // 0: closed
				tls := libc.NewTLS()
				sqlite3.Xsqlite3_interrupt(tls, h)
				tls.Close()
			}
		}
		return nil
	})
	return stop
}

// watch interrupts conn's running statement when ctx ends, until the
// returned release is called (when the statement's rows are closed).
func watch(ctx context.Context, conn *sql.Conn) (release func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	interrupt := interrupter(conn)
	if interrupt == nil {
		return func() {}
	}
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			interrupt()
		case <-done:
		}
	}()
	return func() {
		once.Do(func() { close(done) })
		// An interrupt only ever lands on the statement it was meant for.
		wg.Wait()
	}
}
