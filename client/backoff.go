package client

import (
	"math/rand/v2"
	"time"
)

// backoff returns the delay before retry number attempt (0-based): a
// uniformly random duration in [0, min(max, base*2^attempt)], "full jitter"
// (AWS Architecture Blog, "Exponential Backoff and Jitter"), so that clients
// dropped together by a server restart do not come back together.
func backoff(base, max time.Duration, attempt int) time.Duration {
	return rand.N(backoffCap(base, max, attempt) + 1)
}

// retryDelay is the delay before resending an entry the server asked to
// retry: "equal jitter", half fixed and half random, so that a rate-limited
// entry never comes straight back.
func retryDelay(base, max time.Duration, attempt int) time.Duration {
	d := backoffCap(base, max, attempt)
	return d/2 + rand.N(d/2+1)
}

func backoffCap(base, max time.Duration, attempt int) time.Duration {
	if base <= 0 {
		base = 1
	}
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
