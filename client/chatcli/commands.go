package chatcli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/client"
)

const helpText = `Type "name: message" to send to name; name becomes the conversation, and
lines without "name:" go to the conversation.
  ✓ sent (stored on the server)   ✓✓ delivered   ✓✓ read
/to <user>                  talk to user
/group new <name> <user>…   create a group with users, and talk in it
/group <name or id>         talk in a group
/groups                     your groups
/members                    the group's members
/add <user>…                add users to the group (admins)
/remove <user>…             remove users from the group (admins)
/rename <name>              rename the group (admins)
/leave                      leave the group
/icon <path>                make an image the group's icon (admins)
/send <path> [caption]      send a file (and a caption) in the conversation
/save <n> [dir]             save received file n (📎 … [/save n]) into dir (created if missing; default: here)
/info [n or msg id]         who has your last message (or the n-th last), and when they read it
/who <user>                 show when user is online, or was last seen
/whois <user>               user's profile: name, about line, photo
/profile [name|about <text>]
                            your profile, or set your name or about line
/photo <path>               make an image your profile photo
/privacy [last_seen|online everyone|contacts|nobody]
                            who sees your last seen and online (it works both ways)
/contacts [add|remove <user>…]
                            your contacts, for "contacts" in /privacy
/devices                    your devices connected now
/help  this help
/quit  leave (end of input, Ctrl-D, works too)
`

// commands maps each command (but /quit) to its handler, which runs on
// Run's goroutine and may wait for the server.
var commands = map[string]func(u *ui, ctx context.Context, args []string){
	"/help":     func(u *ui, _ context.Context, _ []string) { u.printf("%s", helpText) },
	"/to":       (*ui).cmdTo,
	"/group":    (*ui).cmdGroup,
	"/groups":   (*ui).cmdGroups,
	"/members":  (*ui).cmdMembers,
	"/add":      (*ui).cmdAdd,
	"/remove":   (*ui).cmdRemove,
	"/rename":   (*ui).cmdRename,
	"/leave":    (*ui).cmdLeave,
	"/info":     (*ui).cmdInfo,
	"/who":      (*ui).cmdWho,
	"/privacy":  (*ui).cmdPrivacy,
	"/contacts": (*ui).cmdContacts,
	"/devices":  (*ui).cmdDevices,
	"/send":     (*ui).cmdSend,
	"/save":     (*ui).cmdSave,
	"/profile":  (*ui).cmdProfile,
	"/whois":    (*ui).cmdWhois,
	"/photo":    (*ui).cmdPhoto,
	"/icon":     (*ui).cmdIcon,
}

// longCommands move files: no requestWait, the transfer takes what it
// takes (the chat's context still ends it).
var longCommands = map[string]bool{"/send": true, "/save": true, "/photo": true, "/icon": true}

// command runs a line that starts with "/" and reports whether it asked
// to quit.
func (u *ui) command(ctx context.Context, line string) (quit bool) {
	f := strings.Fields(line)
	name, args := f[0], f[1:]
	if name == "/quit" || name == "/exit" {
		return true
	}
	run := commands[name]
	if run == nil {
		u.printf("unknown command %s; /help for help\n", name)
		return false
	}
	if !longCommands[name] {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestWait)
		defer cancel()
	}
	run(u, ctx, args)
	return false
}

// failed reports a command's failure.
func (u *ui) failed(cmd string, err error) {
	var se *client.ServerError
	switch {
	case errors.As(err, &se):
		u.printf("  %s: %s (%s)\n", cmd, se.Message, se.Code)
	case errors.Is(err, client.ErrNotConnected):
		u.printf("  %s: not connected; try again once connected\n", cmd)
	default:
		u.printf("  %s: %v\n", cmd, err)
	}
}

// usage prints how to use cmd.
func (u *ui) usage(how string) { u.printf("  usage: %s\n", how) }

// switchTo makes conv the conversation. The peer of a one-to-one
// conversation is watched (presence.sub), so that the screen says when
// they are online or were last seen.
func (u *ui) switchTo(ctx context.Context, conv conversation) {
	u.mu.Lock()
	old := u.conv
	u.conv = conv
	where := "to " + conv.peer
	if conv.group != "" {
		where = "in " + u.label(conv.group)
	}
	dropOld := old.peer != "" && old.peer != conv.peer && !u.watched[old.peer]
	u.mu.Unlock()
	if old == conv {
		return
	}
	u.printf("now talking %s\n", where)
	ctx, cancel := context.WithTimeout(ctx, requestWait)
	defer cancel()
	if dropOld {
		if err := u.c.Unsubscribe(ctx, old.peer); err != nil {
			u.opts.Logger.Debug("chatcli: unsubscribe", "user", old.peer, "err", err)
		}
	}
	if conv.peer != "" {
		if err := u.c.Subscribe(ctx, conv.peer); err != nil {
			u.failed("presence of "+conv.peer, err)
		}
	}
}

func (u *ui) cmdTo(ctx context.Context, args []string) {
	if len(args) != 1 {
		u.usage("/to <user>")
		return
	}
	u.switchTo(ctx, conversation{peer: args[0]})
}

// currentGroup returns the group of the conversation, or prints that there
// is none.
func (u *ui) currentGroup(cmd string) (string, bool) {
	u.mu.Lock()
	g := u.conv.group
	u.mu.Unlock()
	if g == "" {
		u.printf("  %s: not in a group; /group <name> first\n", cmd)
	}
	return g, g != ""
}

func (u *ui) cmdGroup(ctx context.Context, args []string) {
	switch {
	case len(args) == 0:
		u.usage("/group new <name> <user>…  or  /group <name or id>")
	case args[0] == "new":
		u.newGroup(ctx, args[1:])
	case len(args) == 1:
		id, err := u.findGroup(ctx, args[0])
		if err != nil {
			u.failed("/group", err)
			return
		}
		u.switchTo(ctx, conversation{group: id})
	default:
		u.usage("/group <name or id>")
	}
}

func (u *ui) newGroup(ctx context.Context, args []string) {
	if len(args) < 1 {
		u.usage("/group new <name> <user>…")
		return
	}
	id, err := u.c.CreateGroup(ctx, args[0], args[1:]...)
	if err != nil {
		u.failed("/group new", err)
		return
	}
	u.mu.Lock()
	u.groups[id] = args[0]
	u.mu.Unlock()
	u.switchTo(ctx, conversation{group: id})
}

// findGroup resolves a group the user typed: its id, its name, or the
// start of its id. The list of groups is fetched again if nothing matches.
func (u *ui) findGroup(ctx context.Context, arg string) (string, error) {
	if id, ok := u.matchGroup(arg); ok {
		return id, nil
	}
	u.loadGroups(ctx)
	if id, ok := u.matchGroup(arg); ok {
		return id, nil
	}
	return "", fmt.Errorf("no group of yours is named %q or has that id", arg)
}

func (u *ui) matchGroup(arg string) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.groups[arg]; ok {
		return arg, true
	}
	var byName, byPrefix []string
	for id, name := range u.groups {
		if strings.EqualFold(name, arg) {
			byName = append(byName, id)
		}
		if strings.HasPrefix(id, arg) {
			byPrefix = append(byPrefix, id)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], true
	case len(byName) == 0 && len(byPrefix) == 1:
		return byPrefix[0], true
	}
	return "", false
}

// loadGroups learns the names of the user's groups.
func (u *ui) loadGroups(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, requestWait)
	defer cancel()
	groups, err := u.c.Groups(ctx)
	if err != nil {
		u.opts.Logger.Debug("chatcli: group.list", "err", err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, g := range groups {
		u.groups[g.ID] = g.Name
	}
}

func (u *ui) cmdGroups(ctx context.Context, _ []string) {
	groups, err := u.c.Groups(ctx)
	if err != nil {
		u.failed("/groups", err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(groups) == 0 {
		u.writef("  no groups; /group new <name> <user>… makes one\n")
	}
	for _, g := range groups {
		u.groups[g.ID] = g.Name
		u.writef("  %s %s (%d members)\n", u.label(g.ID), g.ID, g.Members)
	}
}

func (u *ui) cmdMembers(ctx context.Context, _ []string) {
	g, ok := u.currentGroup("/members")
	if !ok {
		return
	}
	info, err := u.c.GroupInfo(ctx, g)
	if err != nil {
		u.failed("/members", err)
		return
	}
	names := make([]string, len(info.Members))
	for i, m := range info.Members {
		names[i] = u.name(m.User)
		if m.Admin {
			names[i] += " (admin)"
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.groups[g] = info.Name
	u.writef("  %s: %s\n", u.label(g), strings.Join(names, ", "))
}

func (u *ui) cmdAdd(ctx context.Context, args []string) {
	u.changeMembers(ctx, "/add", args, u.c.AddMembers)
}

func (u *ui) cmdRemove(ctx context.Context, args []string) {
	u.changeMembers(ctx, "/remove", args, u.c.RemoveMembers)
}

// changeMembers applies change to the conversation's group. The group
// event that follows shows the result.
func (u *ui) changeMembers(ctx context.Context, cmd string, users []string,
	change func(ctx context.Context, group string, users ...string) error) {
	if len(users) == 0 {
		u.usage(cmd + " <user>…")
		return
	}
	g, ok := u.currentGroup(cmd)
	if !ok {
		return
	}
	if err := change(ctx, g, users...); err != nil {
		u.failed(cmd, err)
	}
}

func (u *ui) cmdRename(ctx context.Context, args []string) {
	if len(args) == 0 {
		u.usage("/rename <name>")
		return
	}
	g, ok := u.currentGroup("/rename")
	if !ok {
		return
	}
	if err := u.c.RenameGroup(ctx, g, strings.Join(args, " ")); err != nil {
		u.failed("/rename", err)
	}
}

func (u *ui) cmdLeave(ctx context.Context, _ []string) {
	g, ok := u.currentGroup("/leave")
	if !ok {
		return
	}
	if err := u.c.LeaveGroup(ctx, g); err != nil {
		u.failed("/leave", err)
		return
	}
	u.mu.Lock()
	u.conv = conversation{}
	u.mu.Unlock()
}

// cmdInfo shows who has one of the user's messages: the last one, the
// n-th last, or the one with a msg id.
func (u *ui) cmdInfo(ctx context.Context, args []string) {
	if len(args) > 1 {
		u.usage("/info [n or msg id]")
		return
	}
	s, err := u.findSent(args)
	if err != nil {
		u.failed("/info", err)
		return
	}
	info, err := u.c.MsgInfo(ctx, s.msgID)
	if err != nil {
		u.failed("/info", err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if info.Group != "" {
		s.group = info.Group
	} else if info.To != "" {
		s.to = info.To
	}
	u.writef("  %q → %s: %s\n", abbrev(s.body, 40), u.target(s), u.infoLine(info))
}

// findSent returns the message /info names.
func (u *ui) findSent(args []string) (*sent, error) {
	n := 1
	if len(args) == 1 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil {
			return &sent{msgID: args[0]}, nil // a msg id
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if n < 1 || n > len(u.mine) {
		return nil, fmt.Errorf("you have sent %d messages since the chat started", len(u.mine))
	}
	return u.mine[len(u.mine)-n], nil
}

// infoLine shows per member ticks: "bob ✓✓ read 12:03, carol ✓✓
// delivered 12:01, dave ✓ sent". Caller holds u.mu.
func (u *ui) infoLine(info client.MsgInfo) string {
	if info.Group == "" {
		return tick(info.Status)
	}
	parts := make([]string, len(info.Members))
	for i, m := range info.Members {
		parts[i] = m.User + " " + tick(m.Status())
		switch m.Status() {
		case client.StatusRead:
			parts[i] += " " + u.when(m.Read)
		case client.StatusDelivered:
			parts[i] += " " + u.when(m.Delivered)
		}
	}
	if len(parts) == 0 {
		return "no one else in the group"
	}
	return strings.Join(parts, ", ")
}

func tick(s client.Status) string {
	switch s {
	case client.StatusRead, client.StatusDelivered:
		return "✓✓ " + string(s)
	}
	return "✓ sent"
}

// cmdWho watches user's presence; what the server says shows as it comes.
func (u *ui) cmdWho(ctx context.Context, args []string) {
	if len(args) != 1 {
		u.usage("/who <user>")
		return
	}
	user := args[0]
	u.mu.Lock()
	u.watched[user] = true
	delete(u.presence, user) // show the answer even if it did not change
	u.mu.Unlock()
	if err := u.c.Subscribe(ctx, user); err != nil {
		u.failed("/who", err)
		return
	}
	if !u.c.Connected() {
		u.printf("  %s: will show once connected\n", user)
	}
}

func (u *ui) cmdPrivacy(ctx context.Context, args []string) {
	var p client.Privacy
	var err error
	switch {
	case len(args) == 0:
		p, err = u.c.Privacy(ctx)
	case len(args) == 2 && args[0] == "last_seen":
		p, err = u.c.SetPrivacy(ctx, client.Privacy{LastSeen: client.Visibility(args[1])})
	case len(args) == 2 && args[0] == "online":
		p, err = u.c.SetPrivacy(ctx, client.Privacy{Online: client.Visibility(args[1])})
	default:
		u.usage("/privacy [last_seen|online everyone|contacts|nobody]")
		return
	}
	if err != nil {
		u.failed("/privacy", err)
		return
	}
	u.printf("  privacy: last seen %s, online %s\n", p.LastSeen, p.Online)
}

func (u *ui) cmdContacts(ctx context.Context, args []string) {
	var err error
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "list"):
	case len(args) > 1 && args[0] == "add":
		err = u.c.AddContacts(ctx, args[1:]...)
	case len(args) > 1 && args[0] == "remove":
		err = u.c.RemoveContacts(ctx, args[1:]...)
	default:
		u.usage("/contacts [list | add <user>… | remove <user>…]")
		return
	}
	var users []string
	if err == nil {
		users, err = u.c.Contacts(ctx)
	}
	switch {
	case err != nil:
		u.failed("/contacts", err)
	case len(users) == 0:
		u.printf("  no contacts\n")
	default:
		u.printf("  contacts: %s\n", strings.Join(users, ", "))
	}
}

func (u *ui) cmdDevices(ctx context.Context, _ []string) {
	devs, err := u.c.Devices(ctx)
	if err != nil {
		u.failed("/devices", err)
		return
	}
	parts := make([]string, len(devs))
	for i, d := range devs {
		var notes []string
		if d.Current {
			notes = append(notes, "this one")
		}
		if d.Connections > 1 {
			notes = append(notes, fmt.Sprintf("%d connections", d.Connections))
		}
		parts[i] = d.Name
		if len(notes) > 0 {
			parts[i] += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	u.printf("  devices connected: %s\n", strings.Join(parts, ", "))
}
