package chatcli

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard/switchboard/client"
)

// handle receives the client's events, one at a time, on the client's
// goroutine: it prints and never waits for the server.
func (u *ui) handle(ev client.Event) {
	switch e := ev.(type) {
	case client.Message:
		u.message(e)
	case client.Ack:
		u.ack(e)
	case client.Receipt:
		u.receipt(e)
	case client.GroupEvent:
		u.groupEvent(e)
	case client.Presence:
		u.presenceChanged(e)
	case client.Typing:
		u.typingChanged(e)
	case *client.ServerError:
		if client.IsRetriable(e) && e.ID != "" {
			return // the client retries it: nothing for the user to do
		}
		u.printf("  server error: %s: %s\n", e.Code, e.Message)
	case client.StateChange:
		u.state(e)
	}
}

func (u *ui) clock(t time.Time) string {
	now := u.opts.Now()
	if t.IsZero() {
		t = now
	}
	return t.In(now.Location()).Format("15:04:05")
}

// when is a short time for status lines: "12:03" today, "2 Jan 12:03"
// before.
func (u *ui) when(t time.Time) string {
	now := u.opts.Now()
	t = t.In(now.Location())
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04")
	}
	return t.Format("2 Jan 15:04")
}

// lastSeen is "at 12:03" today, "on 2 Jan at 12:03" before.
func (u *ui) lastSeen(t time.Time) string {
	now := u.opts.Now()
	t = t.In(now.Location())
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("at 15:04")
	}
	return t.Format("on 2 Jan at 15:04")
}

// learn asks the loop for the names of the user's groups when group is
// not one of them yet. Caller holds u.mu.
func (u *ui) learn(group string) {
	if group == "" || u.groups[group] != "" {
		return
	}
	select {
	case u.reload <- struct{}{}:
	default:
	}
}

// label names a group for the screen: "[Trip]". Caller holds u.mu.
func (u *ui) label(group string) string {
	if name := u.groups[group]; name != "" {
		return "[" + name + "]"
	}
	if len(group) > 8 {
		return "[" + group[:8] + "…]"
	}
	return "[" + group + "]"
}

// target names where a message went: its recipient or its group's label.
// Caller holds u.mu.
func (u *ui) target(s *sent) string {
	if s.group != "" {
		return u.label(s.group)
	}
	return s.to
}

func (u *ui) message(m client.Message) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.typing, typingKey(m.From, m.Group))
	u.learn(m.Group)
	if m.Own {
		u.ownMessage(m)
		return
	}
	text := u.receivedText(m)
	if m.Group != "" {
		u.writef("[%s] %s %s: %s\n", u.clock(m.TS), u.label(m.Group), m.From, text)
	} else {
		u.writef("[%s] %s: %s\n", u.clock(m.TS), m.From, text)
	}
	// Receipts go out in batches: a sync after a day offline brings
	// hundreds of messages, and one receipt each would trip the server's
	// rate limit.
	u.unreceipted = append(u.unreceipted, m.MsgID)
	if len(u.unreceipted) == 1 {
		u.receiptTimer = time.AfterFunc(receiptDelay, u.sendReceipts)
	}
}

// ownMessage shows the copy of a message this user sent: once. One sent
// from this device is shown by its ack; one from another device is shown
// here, and its ticks follow. Caller holds u.mu.
func (u *ui) ownMessage(m client.Message) {
	if m.ClientID != "" {
		return
	}
	s := &sent{msgID: m.MsgID, to: m.To, group: m.Group, body: sentText(m.Body, m.Attachment), otherDevice: true}
	if m.Group != "" {
		s.to = ""
	}
	u.remember(s)
	u.writef("[%s] you → %s: %s  (from another device)\n", u.clock(m.TS), u.target(s), u.receivedText(m))
}

// remember keeps s, acked as s.msgID, for its ticks and for /info. Caller
// holds u.mu.
func (u *ui) remember(s *sent) {
	u.byMsgID[s.msgID] = s
	u.mine = append(u.mine, s)
	if len(u.mine) > maxMine {
		u.mine = u.mine[len(u.mine)-maxMine:]
	}
}

// receiptDelay is how long receipts for incoming messages wait to be sent
// together.
const receiptDelay = 20 * time.Millisecond

// sendReceipts sends the delivered (and, with AutoRead, read) receipts for
// the messages shown since the last call.
func (u *ui) sendReceipts() {
	u.mu.Lock()
	ids := u.unreceipted
	u.unreceipted = nil
	if u.receiptTimer != nil {
		u.receiptTimer.Stop()
		u.receiptTimer = nil
	}
	u.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx := context.Background()
	err := u.c.MarkDelivered(ctx, ids...)
	if err == nil && *u.opts.AutoRead {
		err = u.c.MarkRead(ctx, ids...)
	}
	if err != nil {
		u.printf("  receipts not sent: %v\n", err)
	}
}

func (u *ui) ack(a client.Ack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.byClientID[a.ClientID]
	delete(u.byClientID, a.ClientID)
	if s == nil {
		s = &sent{to: a.To, group: a.Group, body: sentText(a.Body, a.Attachment)} // sent in an earlier run
	}
	s.msgID = a.MsgID
	u.remember(s)
	u.writef("[%s] you → %s: %s  ✓\n", u.clock(time.Time{}), u.target(s), s.body)
}

func (u *ui) receipt(r client.Receipt) {
	u.mu.Lock()
	defer u.mu.Unlock()
	how := tickWord(r)
	earlier := 0
	for _, id := range r.MsgIDs {
		s := u.byMsgID[id]
		if s == nil {
			earlier++ // sent before this run: nothing to show but a count
			continue
		}
		if rank(r.Status) <= rank(s.status) {
			continue // read already shown; a late delivered adds nothing
		}
		s.status = r.Status
		u.writef("  ✓✓ %s (msg to %s: %q)\n", how, u.target(s), abbrev(s.body, 40))
		if r.Status == client.StatusRead {
			delete(u.byMsgID, id) // nothing more will come
		}
	}
	by := "by " + r.By
	if r.Group != "" {
		by = "in " + u.label(r.Group)
	}
	switch {
	case earlier == 1:
		u.writef("  ✓✓ %s %s (an earlier message)\n", how, by)
	case earlier > 1:
		u.writef("  ✓✓ %s %s (%d earlier messages)\n", how, by, earlier)
	}
}

// tickWord says what a receipt tells: "delivered", "read", and for a
// group, "delivered to everyone" or "read by everyone".
func tickWord(r client.Receipt) string {
	switch {
	case !r.All:
		return string(r.Status)
	case r.Status == client.StatusRead:
		return "read by everyone"
	}
	return string(r.Status) + " to everyone"
}

func rank(s client.Status) int {
	switch s {
	case client.StatusDelivered:
		return 1
	case client.StatusRead:
		return 2
	}
	return 0
}

func abbrev(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// groupEvent shows a change of a group's members, name or icon.
func (u *ui) groupEvent(e client.GroupEvent) {
	u.mu.Lock()
	defer u.mu.Unlock()
	label := u.label(e.Group)
	if e.Name != "" {
		u.groups[e.Group] = e.Name
		if e.Event == client.GroupCreated {
			label = u.label(e.Group)
		}
	}
	u.learn(e.Group)
	by, who := u.name(e.By), u.names(e.Members)
	var what string
	switch e.Event {
	case client.GroupCreated:
		what = fmt.Sprintf("%s created the group: %s", by, who)
	case client.GroupAdded:
		what = fmt.Sprintf("%s added %s", by, who)
	case client.GroupRemoved:
		what = fmt.Sprintf("%s removed %s", by, who)
	case client.GroupLeft:
		what = fmt.Sprintf("%s left", who)
	case client.GroupPromoted:
		what = fmt.Sprintf("%s made %s admin", by, who)
	case client.GroupDemoted:
		what = fmt.Sprintf("%s made %s a plain member", by, who)
	case client.GroupRenamed:
		what = fmt.Sprintf("%s renamed the group to %q", by, e.Name)
	case client.GroupIconChanged:
		what = iconText(by, e.Icon)
	default:
		what = fmt.Sprintf("%s: %s %s", e.Event, by, who)
	}
	u.writef("  %s %s\n", label, what)
}

// name is how user appears in status lines: "you" for this user.
func (u *ui) name(user string) string {
	if user == u.opts.User {
		return "you"
	}
	return user
}

func (u *ui) names(users []string) string {
	out := make([]string, len(users))
	for i, x := range users {
		out[i] = u.name(x)
	}
	return strings.Join(out, ", ")
}

// presenceChanged shows what this user may see of someone's presence when
// it looks different from the last time.
func (u *ui) presenceChanged(p client.Presence) {
	var shown string
	switch {
	case p.Online != nil && *p.Online:
		shown = p.User + " is online"
	case p.LastSeen != nil:
		shown = fmt.Sprintf("%s was last seen %s", p.User, u.lastSeen(*p.LastSeen))
	case p.Online != nil:
		shown = p.User + " is offline"
	default:
		shown = p.User + "'s last seen and online are hidden"
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.presence[p.User] == shown {
		return
	}
	u.presence[p.User] = shown
	u.writef("  %s\n", shown)
}

func typingKey(from, group string) string { return from + "\x00" + group }

// typingChanged shows "bob is typing…" when bob starts.
func (u *ui) typingChanged(t client.Typing) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k := typingKey(t.From, t.Group)
	if t.Stop {
		delete(u.typing, k)
		return
	}
	if u.typing[k] {
		return // shown already
	}
	u.typing[k] = true
	if t.Group != "" {
		u.writef("  %s %s is typing…\n", u.label(t.Group), t.From)
	} else {
		u.writef("  %s is typing…\n", t.From)
	}
}
