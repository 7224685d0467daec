package dbtest

import (
	"context"
	"sync"
	"time"

	"github.com/savvi-studio/dbinit/internal/provision"
)

// PoolSize keeps n clones of the template ready, made in the background
// once a second test asks for a database of the template and made again
// as tests take them, so that a test gets its database by a rename instead of waiting for
// a copy. A database is never given to two tests. 0 turns the pool off.
// Default 4. There is one pool per template and strategy in a test binary;
// the first test that uses it sets its size. Clones left in the pool when
// the test binary ends go with a throwaway server, or are removed by the
// sweep of a later run (after an hour).
func PoolSize(n int) Option { return func(o *options) { o.poolSize = max(n, 0) } }

// defaultPoolSize is PoolSize's default.
const defaultPoolSize = 4

// pool is the ready clones of one template, made with one strategy.
type pool struct {
	tp       *template
	strategy string
	size     int

	mu      sync.Mutex
	takes   int      // databases asked for so far
	ready   []string // names of clones nobody has taken
	filling bool     // a goroutine is making clones
	failed  error    // the last clone failed: stop filling, tests clone themselves
}

// poolFor returns the pool of tp for the strategy, made on first use.
func (tp *template) poolFor(strategy string, size int) *pool {
	tp.poolsMu.Lock()
	defer tp.poolsMu.Unlock()
	if tp.pools == nil {
		tp.pools = map[string]*pool{}
	}
	p := tp.pools[strategy]
	if p == nil {
		p = &pool{tp: tp, strategy: strategy, size: size}
		tp.pools[strategy] = p
	}
	return p
}

// take returns a ready clone, or "" when none is ready; from the second
// database asked for on, it makes sure the pool is being filled. A test
// binary that makes one database of a template (a package with one
// database test) makes no clones ahead that nobody would take.
func (p *pool) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.takes++
	var name string
	if n := len(p.ready); n > 0 {
		name, p.ready = p.ready[n-1], p.ready[:n-1]
	}
	if p.takes >= 2 && !p.filling && p.failed == nil && len(p.ready) < p.size {
		p.filling = true
		go p.fill()
	}
	return name
}

// fill makes clones until the pool is full.
func (p *pool) fill() {
	for {
		p.mu.Lock()
		if len(p.ready) >= p.size || p.failed != nil {
			p.filling = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		name := provision.TestDatabaseName(dbPrefix, "pool")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := p.tp.withServer(ctx, func(s *provision.Server, _ provision.Target) error {
			if err := s.Clone(ctx, p.tp.name, name, provision.CloneOptions{Strategy: p.strategy}); err != nil {
				return err
			}
			return s.MarkTest(ctx, name)
		})
		cancel()
		p.mu.Lock()
		if err != nil {
			p.failed = err
		} else {
			p.ready = append(p.ready, name)
		}
		p.mu.Unlock()
	}
}
