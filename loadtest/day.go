package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Day is "a day in the life": the load of the peak hour derived from
// users' habits, rather than chosen by hand. Of a population of DAU daily
// active users, OnlineShare are connected at the peak; each user sends
// MsgsPerDay messages a day, and the peak hour carries PeakFactor times
// the day's average hourly rate. Messages have lognormal sizes (median
// 40 bytes, sigma 1: mostly short texts, a long tail) unless SizeDist says
// otherwise, and every one is read at once (a read receipt). It runs as
// Chat, open loop with Poisson arrivals, for Duration of that peak.
//
//	connections = DAU × OnlineShare (half sending, half receiving)
//	peak rate   = DAU × MsgsPerDay / 86,400 s × PeakFactor
type Day struct {
	DAU         int
	OnlineShare float64
	MsgsPerDay  float64
	PeakFactor  float64
	Duration    time.Duration
	// SizeDist defaults to "lognormal:40,1".
	SizeDist string
	Seed     uint64
	// Drain bounds the wait for outstanding messages. Default 10s.
	Drain time.Duration
	// Processes is Chat.Processes: how many generator processes share the
	// connections. Default 0: as many as the open-file limit needs.
	Processes int
}

var _ Scenario = (*Day)(nil)

// Name implements Scenario.
func (s *Day) Name() string { return "day" }

// chat is the Chat run that the habits come to.
func (s *Day) chat() *Chat {
	conns := int(math.Round(float64(s.DAU) * s.OnlineShare))
	dist := s.SizeDist
	if dist == "" {
		dist = "lognormal:40,1"
	}
	return &Chat{Pairs: max(conns/2, 1), Rate: s.peakRate(), Duration: s.Duration, Poisson: true,
		SizeDist: dist, Receipts: true, Seed: s.Seed, Drain: s.Drain, Processes: s.Processes}
}

func (s *Day) peakRate() float64 { return float64(s.DAU) * s.MsgsPerDay / 86400 * s.PeakFactor }

// Params implements Scenario.
func (s *Day) Params() map[string]any {
	p := s.chat().Params()
	p["dau"], p["online_share"], p["msgs_per_user_day"], p["peak_factor"] = s.DAU, s.OnlineShare, s.MsgsPerDay, s.PeakFactor
	return p
}

// Validate implements Scenario.
func (s *Day) Validate() error {
	var errs []error
	if s.DAU < 2 || s.OnlineShare <= 0 || s.OnlineShare > 1 || s.MsgsPerDay <= 0 || s.PeakFactor < 1 {
		errs = append(errs, errors.New("day: --dau at least 2, --online-share in (0, 1], --msgs-per-day positive, --peak-factor at least 1"))
	}
	if len(errs) == 0 && float64(s.DAU)*s.OnlineShare < 2 {
		errs = append(errs, errors.New("day: fewer than 2 users online: raise --dau or --online-share"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return s.chat().Validate()
}

// Run implements Scenario.
func (s *Day) Run(ctx context.Context, env *Env, r *Report) error {
	c := s.chat()
	c.setDefaults()
	r.Add("users online at the peak", float64(2*c.Pairs), "")
	r.Add("peak message rate", c.Rate, "msg/s")
	r.Note("day in the life: %d DAU × %.2f online = %d connections; %d DAU × %g msgs/day ÷ 86400 s × peak factor %g = %.1f msg/s (Poisson), each read at once",
		s.DAU, s.OnlineShare, 2*c.Pairs, s.DAU, s.MsgsPerDay, s.PeakFactor, c.Rate)
	if err := c.Run(ctx, env, r); err != nil {
		return fmt.Errorf("day: %w", err)
	}
	return nil
}
