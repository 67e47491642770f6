package gateway

import (
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

// Frames beyond v1's send, receipt and sync: groups, msg.info, typing and
// profiles (profile.go) go to the Service's committer (which holds the
// groups); devices.list to a hub worker. Each frame with an "id" gets
// exactly one reply with that id, an ack or an error.

var groupOps = map[protocol.Type]chat.GroupOp{
	protocol.TypeGroupCreate: chat.GroupCreate, protocol.TypeGroupAdd: chat.GroupAdd,
	protocol.TypeGroupRemove: chat.GroupRemove, protocol.TypeGroupLeave: chat.GroupLeave,
	protocol.TypeGroupPromote: chat.GroupPromote, protocol.TypeGroupDemote: chat.GroupDemote,
	protocol.TypeGroupRename: chat.GroupRename, protocol.TypeGroupInfo: chat.GroupInfo,
	protocol.TypeGroupList: chat.GroupList, protocol.TypeGroupIcon: chat.GroupIcon,
}

const (
	msgBadGroup = `"group" must be a group id, as group.create returned it`
	msgNeedID   = `"id" is required: 1 to 128 bytes`
	msgBadUsers = `"users" entries must be user ids: 1 to 128 bytes, no control characters`
)

// dispatch handles a known frame type that message does not.
func (l *loop) dispatch(c *wsConn, r *protocol.Request, now int64) {
	if op, ok := groupOps[r.Type]; ok {
		l.groupOp(c, r, op, now)
		return
	}
	switch r.Type {
	case protocol.TypeMsgInfo:
		switch {
		case !r.HasID || !validID(r.ID):
			l.writeError(c, r.ID, protocol.CodeBadRequest, msgNeedID)
			return
		case !r.HasMsgID || !validMsgIDs([][]byte{r.MsgID}):
			l.writeError(c, r.ID, protocol.CodeBadRequest, `"msg_id" must be a message id: 26 characters of Crockford base32`)
			return
		}
		q := getReq(c, now, len(r.ID)+len(r.MsgID))
		q.Kind = chat.KindMsgInfo
		q.ClientID = q.keep(r.ID)
		q.MsgIDs = append(q.MsgIDs, q.keep(r.MsgID))
		l.submit(c, q, r.ID)
	case protocol.TypeTyping:
		l.typing(c, r, now)
	case protocol.TypeProfileSet, protocol.TypeProfileGet:
		l.profile(c, r, now)
	case protocol.TypeDevicesList:
		if !r.HasID || !validID(r.ID) {
			l.writeError(c, r.ID, protocol.CodeBadRequest, msgNeedID)
			return
		}
		l.g.hub.devicesList(c, r.ID)
	default:
		l.presence(c, r, now) // presence.go
	}
}

func (l *loop) groupOp(c *wsConn, r *protocol.Request, op chat.GroupOp, now int64) {
	switch {
	case !r.HasID || !validID(r.ID):
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgNeedID)
		return
	case op != chat.GroupCreate && op != chat.GroupList && !validMsgIDs([][]byte{r.Group}):
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadGroup)
		return
	case (op == chat.GroupCreate || op == chat.GroupRename) && !r.HasName:
		l.writeError(c, r.ID, protocol.CodeBadRequest, `missing "name"`)
		return
	case (op == chat.GroupAdd || op == chat.GroupRemove || op == chat.GroupPromote || op == chat.GroupDemote) && !r.HasMembers:
		l.writeError(c, r.ID, protocol.CodeBadRequest, `missing "members"`)
		return
	case op == chat.GroupIcon && !r.HasIcon:
		l.writeError(c, r.ID, protocol.CodeBadRequest, `missing "icon"`)
		return
	case op == chat.GroupIcon && !validAssetRef(r.Icon):
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadIcon)
		return
	}
	need := len(r.ID) + len(r.Group) + len(r.Name) + len(r.Icon)
	for _, m := range r.Members {
		need += len(m)
	}
	q := getReq(c, now, need)
	q.Kind, q.Op, q.ack = chat.KindGroup, op, true
	q.ClientID = q.keep(r.ID)
	q.Group = q.keep(r.Group)
	q.Name = q.keep(r.Name)
	if op == chat.GroupIcon {
		q.AssetID = q.keep(r.Icon) // empty: remove the icon
	}
	for _, m := range r.Members {
		q.Members = append(q.Members, q.keep(m))
	}
	l.submit(c, q, r.ID)
}

// typing forwards a typing frame, at most one per typing_interval per
// connection; more get a rate_limited error and are dropped.
func (l *loop) typing(c *wsConn, r *protocol.Request, now int64) {
	g := l.g
	switch {
	case r.HasID && !validID(r.ID):
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadID)
		return
	case r.HasGroup == r.HasTo:
		l.writeError(c, r.ID, protocol.CodeBadRequest, `typing needs "to" or "group", not both`)
		return
	case r.HasTo && !validUser(r.To):
		l.writeError(c, r.ID, protocol.CodeBadRequest, `"to" must be a user id: 1 to 128 bytes, no control characters`)
		return
	case r.HasGroup && !validMsgIDs([][]byte{r.Group}):
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadGroup)
		return
	case now-c.typingAt < int64(g.cfg.TypingInterval):
		g.m.typingDropped.Inc()
		l.writeError(c, r.ID, protocol.CodeRateLimited, "typing: at most one frame per typing_interval; this one was dropped")
		return
	}
	c.typingAt = now
	q := getReq(c, now, len(r.ID)+len(r.To)+len(r.Group))
	q.Kind, q.ack = chat.KindTyping, r.HasID
	q.ClientID = q.keep(r.ID)
	q.To = q.keep(r.To)
	q.Group = q.keep(r.Group)
	q.Stop = r.Stop
	l.submit(c, q, r.ID)
}
