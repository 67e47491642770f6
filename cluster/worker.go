package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/chat"
)

// Submitter is the messaging core a worker feeds: *chat.Service.
type Submitter interface {
	Submit(r *chat.Request) error
}

// Replier sends a reply to the gateway node that sent a command.
type Replier interface {
	// Reply sends payload to node, taking ownership of it. It must not
	// block; a reply it cannot send is lost, and the gateway answers the
	// client "overloaded" after its reply timeout (the client resends with
	// the same id and gets the original's ack).
	Reply(node string, payload []byte)
}

// Worker applies commands from the log to the messaging core and sends
// each result back to the gateway that asked. Safe for concurrent use,
// though a log partition's records must be handled in their order (one
// goroutine per partition) for the core to see them in that order.
type Worker struct {
	svc     Submitter
	rep     Replier
	log     *slog.Logger
	stats   WorkerStats
	metrics *Metrics
	pool    sync.Pool // *job
}

// WorkerStats counts what a Worker did.
type WorkerStats struct {
	Handled, Bad, Retried atomic.Uint64
}

// NewWorker returns a Worker submitting to svc and replying through rep.
// m may be nil.
func NewWorker(svc Submitter, rep Replier, m *Metrics, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{svc: svc, rep: rep, log: log, metrics: m}
	w.pool.New = func() any { return &job{w: w} }
	return w
}

// Stats returns the Worker's counters.
func (w *Worker) Stats() *WorkerStats { return &w.stats }

// job is one command in flight: the request, decoded in place from the
// record, and where its answer goes.
type job struct {
	w     *Worker
	req   chat.Request
	node  string
	corr  uint64
	start time.Time // when Handle got it
	done  func()
	retry time.Duration // a failed forward's last wait before it was submitted again
}

// resubmit submits a failed forward again. While the core is overloaded
// it waits; once the core is shutting down (the partition was handed
// over) it gives up without calling done, so the offset stays before it
// and the partition's next owner applies it.
func (j *job) resubmit() {
	switch err := j.w.svc.Submit(&j.req); {
	case err == nil:
	case errors.Is(err, chat.ErrOverloaded):
		time.AfterFunc(j.retry, j.resubmit)
	default:
		j.w.log.Warn("a forward was not applied before the partition was handed over; its next owner applies it", "err", err)
	}
}

// Handle decodes the command in value, appended to the log at at, and
// submits it to the core. done
// is called once the request has completed: its writes are durable and
// its reply handed to the Replier. For a record that is not a command
// (it is logged, counted and skipped) done is called before Handle
// returns. value must stay unchanged until done.
//
// While the core is overloaded Handle waits and retries, so a consumer
// calling it in a loop stops fetching: the backpressure reaches the log,
// not the floor. It returns an error only when ctx ends or the core is
// shutting down; the command was then not submitted, and done is not
// called.
func (w *Worker) Handle(ctx context.Context, value []byte, at time.Time, done func()) error {
	j := w.pool.Get().(*job)
	j.start = time.Now()
	if w.metrics != nil && !at.IsZero() {
		w.metrics.waitSeconds.Observe(max(j.start.Sub(at).Seconds(), 0))
	}
	j.req.Done = j
	node, corr, err := DecodeCommand(value, &j.req)
	if err != nil {
		w.stats.Bad.Add(1)
		w.log.Warn("skipping a record that is not a command", "err", err, "bytes", len(value))
		w.put(j)
		done()
		return nil
	}
	j.node, j.corr, j.done = node, corr, done
	backoff := time.Millisecond
	for {
		err := w.svc.Submit(&j.req)
		if err == nil {
			w.stats.Handled.Add(1)
			return nil
		}
		if !errors.Is(err, chat.ErrOverloaded) {
			w.put(j)
			return err
		}
		w.stats.Retried.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			w.put(j)
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// Complete sends the reply and reports the command done (chat.Completer).
// A forward that failed (its batch did, or one before it from its source
// did) is submitted again instead, until it is applied: nobody else would
// send it again, and the partition's offset must not pass it.
func (j *job) Complete(_ *chat.Request, res chat.Result) {
	if j.req.Kind == chat.KindForward && res.Err != nil && !errors.Is(res.Err, chat.ErrBadForward) {
		j.w.stats.Retried.Add(1)
		j.retry = min(max(2*j.retry, time.Millisecond), 100*time.Millisecond)
		time.AfterFunc(j.retry, j.resubmit)
		return
	}
	if m := j.w.metrics; m != nil {
		m.coreSeconds.Observe(time.Since(j.start).Seconds())
	}
	if j.node != "" {
		j.w.rep.Reply(j.node, AppendReply(make([]byte, 0, 64+len(res.MsgID)+len(res.Data)), j.corr, &res))
	}
	done := j.done
	j.w.put(j)
	done()
}

func (w *Worker) put(j *job) {
	j.req = chat.Request{}
	j.node, j.corr, j.start, j.done, j.retry = "", 0, time.Time{}, nil, 0
	w.pool.Put(j)
}

// Offsets tracks the records of one log partition from the moment they
// are handed to a Worker until they are done, and says up to where the
// partition's offset may be committed: past every record done, never past
// one that is not (records may complete out of order). Safe for
// concurrent use.
type Offsets struct {
	mu    sync.Mutex
	queue []tracked // in offset order
	head  int
	next  int64 // the offset to commit: after the last contiguous done record; -1 before any
}

type tracked struct {
	offset int64
	done   bool
}

// NewOffsets returns a tracker for a partition.
func NewOffsets() *Offsets { return &Offsets{next: -1} }

// Add records that the record at offset was handed over. Offsets must
// increase.
func (o *Offsets) Add(offset int64) {
	o.mu.Lock()
	o.queue = append(o.queue, tracked{offset: offset})
	o.mu.Unlock()
}

// Done marks the record at offset done.
func (o *Offsets) Done(offset int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := o.head; i < len(o.queue); i++ {
		if o.queue[i].offset == offset {
			o.queue[i].done = true
			break
		}
	}
	for o.head < len(o.queue) && o.queue[o.head].done {
		o.next = o.queue[o.head].offset + 1
		o.head++
	}
	if o.head == len(o.queue) || o.head > 1024 && o.head > len(o.queue)/2 {
		n := copy(o.queue, o.queue[o.head:])
		o.queue = o.queue[:n]
		o.head = 0
	}
}

// Committable returns the offset to commit (the next record to read after
// a restart), or -1 when no record is done yet.
func (o *Offsets) Committable() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next
}

// InFlight returns how many records were handed over and are not done.
func (o *Offsets) InFlight() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, t := range o.queue[o.head:] {
		if !t.done {
			n++
		}
	}
	return n
}
