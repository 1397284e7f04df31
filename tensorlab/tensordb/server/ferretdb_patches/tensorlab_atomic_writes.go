// Added by TensorLab to its build of FerretDB v1.24 (tensorlab/tensordb/server/ferretdb_build.py).
//
// FerretDB 1.x runs update, findAndModify and delete as a read of the matching documents followed by a
// separate write, with nothing held in between: two clients updating one document both read it, and the
// later write drops the earlier one's change ($inc, $set of other fields, $addToSet alike; 4 processes x 300
// $inc on one document kept 347). MongoDB documents every single-document write as atomic, and TensorLab's
// derived documents rely on it. These locks make this build keep that promise: a write that names one
// document by a scalar _id holds that document's stripe (and the collection's lock shared); any other
// filter holds the collection's lock alone. Inserts need none: the unique _id index decides them.

package handler

import (
	"fmt"
	"hash/fnv"
	"sort"
	"sync"

	"github.com/FerretDB/FerretDB/internal/handler/common"
	"github.com/FerretDB/FerretDB/internal/types"
)

const tensorlabStripes = 256

type tensorlabCollectionLock struct {
	all     sync.RWMutex
	stripes [tensorlabStripes]sync.Mutex
}

var (
	tensorlabLocksMu sync.Mutex
	tensorlabLocks   = map[string]*tensorlabCollectionLock{}
)

func tensorlabLockFor(db, collection string) *tensorlabCollectionLock {
	tensorlabLocksMu.Lock()
	defer tensorlabLocksMu.Unlock()

	key := db + "\x00" + collection
	l := tensorlabLocks[key]

	if l == nil {
		l = new(tensorlabCollectionLock)
		tensorlabLocks[key] = l
	}

	return l
}

// tensorlabStripe is the stripe of a filter that names one document by a scalar _id, or -1.
func tensorlabStripe(filter *types.Document) int {
	if filter == nil {
		return -1
	}

	id, err := filter.Get("_id")
	if err != nil {
		return -1
	}

	switch id.(type) {
	case *types.Document, *types.Array:
		return -1
	}

	h := fnv.New32a()
	fmt.Fprintf(h, "%v", id) // 5 and 5.0 share a stripe: over-locking is harmless

	return int(h.Sum32() % tensorlabStripes)
}

// tensorlabLockWrites takes what writes with these filters need and returns its release.
func tensorlabLockWrites(db, collection string, filters ...*types.Document) func() {
	l := tensorlabLockFor(db, collection)
	seen := map[int]bool{}
	stripes := make([]int, 0, len(filters))

	for _, f := range filters {
		s := tensorlabStripe(f)
		if s < 0 {
			l.all.Lock()
			return l.all.Unlock
		}

		if !seen[s] {
			seen[s] = true
			stripes = append(stripes, s)
		}
	}

	sort.Ints(stripes) // one order for everyone: no deadlock between multi-document commands

	l.all.RLock()

	for _, s := range stripes {
		l.stripes[s].Lock()
	}

	return func() {
		for i := len(stripes) - 1; i >= 0; i-- {
			l.stripes[stripes[i]].Unlock()
		}

		l.all.RUnlock()
	}
}

// tensorlabLockUpdates is tensorlabLockWrites for the statements of one update command.
func tensorlabLockUpdates(db, collection string, updates []common.Update) func() {
	filters := make([]*types.Document, len(updates))
	for i := range updates {
		filters[i] = updates[i].Filter
	}

	return tensorlabLockWrites(db, collection, filters...)
}
