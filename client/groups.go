package client

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Group requests (protocol "Groups"). Each is a Request: it works only
// while connected (ErrNotConnected), and a refusal is a *ServerError with
// the protocol's code (CodeNotFound, CodeNotMember, CodeNotAdmin,
// CodeGroupFull, CodeBadRequest). All are safe for concurrent use and must
// not be called from the Handler.

// GroupMember is a member of a group, as GroupInfo lists it.
type GroupMember struct {
	User  string `json:"user"`
	Admin bool   `json:"admin"`
}

// GroupInfo describes a group: GroupInfo's result.
type GroupInfo struct {
	ID        string
	Name      string
	Icon      string // the icon's asset id (Download fetches it); "" for none
	Created   time.Time
	CreatedBy string
	Members   []GroupMember // sorted by user
}

// GroupSummary is a group the user is in, as Groups lists it.
type GroupSummary struct {
	ID      string `json:"group_id"`
	Name    string `json:"name"`
	Members int    `json:"members"` // how many
}

// StatusSent is the status of a message no recipient has reported yet; it
// appears only in MsgInfo (receipts say delivered or read).
const StatusSent Status = "sent"

// MemberStatus is how far a group message got with one member: a zero
// time means not yet.
type MemberStatus struct {
	User      string
	Delivered time.Time
	Read      time.Time
}

// Status returns the member's status: read, delivered or sent.
func (m MemberStatus) Status() Status {
	switch {
	case !m.Read.IsZero():
		return StatusRead
	case !m.Delivered.IsZero():
		return StatusDelivered
	}
	return StatusSent
}

// MsgInfo is the state of one of the user's messages: MsgInfo's result.
// For a group message, Group and Members are set (the members at send
// time, minus the sender and those who left); for a one-to-one message, To
// and Status.
type MsgInfo struct {
	MsgID   string
	Group   string
	Members []MemberStatus
	To      string
	Status  Status
}

// call makes a Request of type typ with fields and decodes its ack into
// out, unless out is nil.
func (c *Client) call(ctx context.Context, typ string, fields map[string]any, out any) error {
	frame := map[string]any{"type": typ}
	maps.Copy(frame, fields)
	ack, err := c.Request(ctx, frame)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ack, out); err != nil {
		return fmt.Errorf("client: %s: malformed ack: %w", typ, err)
	}
	return nil
}

// CreateGroup creates a group named name (1 to 256 bytes) with this user,
// its admin, and members, and returns its id. Every member gets a
// GroupEvent "created" in their inbox.
func (c *Client) CreateGroup(ctx context.Context, name string, members ...string) (groupID string, err error) {
	var ack struct {
		GroupID string `json:"group_id"`
	}
	if members == nil {
		members = []string{}
	}
	if err := c.call(ctx, "group.create", map[string]any{"name": name, "members": members}, &ack); err != nil {
		return "", err
	}
	if ack.GroupID == "" {
		return "", fmt.Errorf("client: group.create: the ack has no group_id")
	}
	return ack.GroupID, nil
}

// AddMembers adds users to group (admins only). Adding a member again
// changes nothing.
func (c *Client) AddMembers(ctx context.Context, group string, users ...string) error {
	return c.members(ctx, "group.add", group, users)
}

// RemoveMembers removes users from group (admins only).
func (c *Client) RemoveMembers(ctx context.Context, group string, users ...string) error {
	return c.members(ctx, "group.remove", group, users)
}

// PromoteMembers makes users admins of group (admins only).
func (c *Client) PromoteMembers(ctx context.Context, group string, users ...string) error {
	return c.members(ctx, "group.promote", group, users)
}

// DemoteMembers makes admins of group plain members (admins only); the
// last admin cannot be demoted.
func (c *Client) DemoteMembers(ctx context.Context, group string, users ...string) error {
	return c.members(ctx, "group.demote", group, users)
}

func (c *Client) members(ctx context.Context, typ, group string, users []string) error {
	return c.call(ctx, typ, map[string]any{"group": group, "members": users}, nil)
}

// LeaveGroup takes this user out of group.
func (c *Client) LeaveGroup(ctx context.Context, group string) error {
	return c.call(ctx, "group.leave", map[string]any{"group": group}, nil)
}

// RenameGroup renames group (admins only).
func (c *Client) RenameGroup(ctx context.Context, group, name string) error {
	return c.call(ctx, "group.rename", map[string]any{"group": group, "name": name}, nil)
}

// GroupInfo returns group's name, icon, creation and members (members
// only).
func (c *Client) GroupInfo(ctx context.Context, group string) (GroupInfo, error) {
	var ack struct {
		Group     string        `json:"group"`
		Name      string        `json:"name"`
		Icon      string        `json:"icon"`
		Created   int64         `json:"created"`
		CreatedBy string        `json:"created_by"`
		Members   []GroupMember `json:"members"`
	}
	if err := c.call(ctx, "group.info", map[string]any{"group": group}, &ack); err != nil {
		return GroupInfo{}, err
	}
	return GroupInfo{ID: ack.Group, Name: ack.Name, Icon: ack.Icon, Created: time.UnixMilli(ack.Created),
		CreatedBy: ack.CreatedBy, Members: ack.Members}, nil
}

// Groups lists the groups this user is in.
func (c *Client) Groups(ctx context.Context) ([]GroupSummary, error) {
	var ack struct {
		Groups []GroupSummary `json:"groups"`
	}
	if err := c.call(ctx, "group.list", nil, &ack); err != nil {
		return nil, err
	}
	return ack.Groups, nil
}

// MsgInfo returns the state of msgID, one of this user's messages (else
// CodeNotFound): for a group message, when each member had it delivered
// and read.
func (c *Client) MsgInfo(ctx context.Context, msgID string) (MsgInfo, error) {
	var ack struct {
		MsgID   string `json:"msg_id"`
		Group   string `json:"group"`
		To      string `json:"to"`
		Status  Status `json:"status"`
		Members []struct {
			User      string `json:"user"`
			Delivered int64  `json:"delivered"`
			Read      int64  `json:"read"`
		} `json:"members"`
	}
	if err := c.call(ctx, "msg.info", map[string]any{"msg_id": msgID}, &ack); err != nil {
		return MsgInfo{}, err
	}
	info := MsgInfo{MsgID: ack.MsgID, Group: ack.Group, To: ack.To, Status: ack.Status}
	for _, m := range ack.Members {
		info.Members = append(info.Members, MemberStatus{User: m.User, Delivered: msTime(m.Delivered), Read: msTime(m.Read)})
	}
	return info, nil
}

// msTime is the time of unix milliseconds ms; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
