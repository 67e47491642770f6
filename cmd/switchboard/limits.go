package main

import (
	"log/slog"

	"github.com/switchboard/switchboard/gateway"
	"github.com/switchboard/switchboard/tuning"
)

// checkLimits raises this process's soft open-file limit to the hard
// limit and warns when gateway.max_connections is more than the box's
// limits allow (tuning.Check, as `switchboard tune check` does). With no
// max_connections (0) there is nothing to compare: it logs the limits.
func checkLimits(cfg gateway.Config, log *slog.Logger) {
	fl, err := tuning.RaiseFileLimit()
	if err != nil {
		log.Warn("could not raise the open-file limit", "soft", fl.Soft, "hard", fl.Hard, "err", err)
	}
	if cfg.MaxConnections <= 0 {
		log.Info("open-file limit", "soft", fl.Soft, "hard", fl.Hard)
		return
	}
	r, err := tuning.Check(tuning.Config{Conns: int64(cfg.MaxConnections), Files: &fl, PingInterval: cfg.PingInterval})
	if err != nil {
		log.Warn("could not check the limits for gateway.max_connections", "err", err)
		return
	}
	if !r.Reachable {
		log.Warn("gateway.max_connections is more than this box's limits allow; see `switchboard tune check`",
			"max_connections", cfg.MaxConnections, "capacity", r.Capacity, "verdict", r.Verdict())
	}
}
