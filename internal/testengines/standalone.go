package testengines

// Engines are the three servers a distributed deployment needs, started
// outside a test: for `make cluster` (scripts/cluster.sh), which runs the
// whole distributed stack on one machine to try it out.
type Engines struct {
	Redis     *RedisServer
	Kafka     *KafkaServer
	Cassandra *CassandraServer
}

// StartAll starts Redis, Kafka and Cassandra on free loopback ports, each
// with its data in a new temporary directory, and returns once all are
// ready. On failure it stops those it started.
func StartAll() (*Engines, error) {
	e := &Engines{}
	var err error
	if e.Redis, _, err = startRedis(nil); err != nil {
		return nil, err
	}
	if e.Kafka, _, err = startKafka(); err != nil {
		e.Stop(false)
		return nil, err
	}
	if e.Cassandra, _, err = startCassandra(); err != nil {
		e.Stop(false)
		return nil, err
	}
	return e, nil
}

// Stop stops every server that runs and removes its directory, unless
// keep.
func (e *Engines) Stop(keep bool) {
	for _, p := range []*Process{e.proc(0), e.proc(1), e.proc(2)} {
		if p != nil {
			p.finish(keep)
		}
	}
}

func (e *Engines) proc(i int) *Process {
	switch {
	case i == 0 && e.Redis != nil:
		return e.Redis.Process
	case i == 1 && e.Kafka != nil:
		return e.Kafka.Process
	case i == 2 && e.Cassandra != nil:
		return e.Cassandra.Process
	}
	return nil
}
