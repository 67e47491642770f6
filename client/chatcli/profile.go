package chatcli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/switchboard/switchboard/client"
)

// Profiles and group icons: /profile shows or sets the user's name and
// about line, /photo and /icon upload an image and make it the profile
// photo or the group's icon, /whois shows someone's profile. A photo shows
// as a file /save can fetch.

func (u *ui) cmdProfile(ctx context.Context, args []string) {
	var up client.ProfileUpdate
	switch {
	case len(args) == 0:
		ps, err := u.c.Profiles(ctx, u.opts.User)
		if err != nil {
			u.failed("/profile", err)
			return
		}
		u.showProfile(ps[0])
		return
	case len(args) >= 2 && args[0] == "name":
		up.Name = new(strings.Join(args[1:], " "))
	case len(args) >= 2 && args[0] == "about":
		up.About = new(strings.Join(args[1:], " "))
	default:
		u.usage("/profile [name|about <text>]")
		return
	}
	p, err := u.c.SetProfile(ctx, up)
	if err != nil {
		u.failed("/profile", err)
		return
	}
	u.showProfile(p)
}

func (u *ui) cmdWhois(ctx context.Context, args []string) {
	if len(args) != 1 {
		u.usage("/whois <user>")
		return
	}
	ps, err := u.c.Profiles(ctx, args[0])
	if err != nil {
		u.failed("/whois", err)
		return
	}
	u.showProfile(ps[0])
}

// cmdPhoto uploads an image and makes it the user's profile photo.
func (u *ui) cmdPhoto(ctx context.Context, args []string) {
	if len(args) != 1 {
		u.usage("/photo <path>")
		return
	}
	id, ok := u.uploadImage(ctx, "/photo", args[0])
	if !ok {
		return
	}
	p, err := u.c.SetProfile(ctx, client.ProfileUpdate{Photo: &id})
	if err != nil {
		u.failed("/photo", err)
		return
	}
	u.showProfile(p)
}

// cmdIcon uploads an image and makes it the icon of the conversation's
// group; the group event that follows says so.
func (u *ui) cmdIcon(ctx context.Context, args []string) {
	if len(args) != 1 {
		u.usage("/icon <path>")
		return
	}
	g, ok := u.currentGroup("/icon")
	if !ok {
		return
	}
	id, ok := u.uploadImage(ctx, "/icon", args[0])
	if !ok {
		return
	}
	if err := u.c.SetGroupIcon(ctx, g, id); err != nil {
		u.failed("/icon", err)
	}
}

// uploadImage uploads the file at path and returns its asset id, or
// reports why not. The server says whether it is an image.
func (u *ui) uploadImage(ctx context.Context, cmd, path string) (string, bool) {
	if st, err := os.Stat(path); err != nil {
		u.failed(cmd, err)
		return "", false
	} else if !st.Mode().IsRegular() {
		u.printf("  %s: %s is not a file\n", cmd, path)
		return "", false
	}
	att, err := u.c.UploadFile(ctx, path)
	if err != nil {
		u.failed(cmd, err)
		return "", false
	}
	if att.Kind != "" && att.Kind != "image" {
		u.printf("  %s: %s is not an image (%s)\n", cmd, path, att.MIME)
		return "", false
	}
	return att.AssetID, true
}

// showProfile prints p: its name, about line (each of its lines) and
// photo, numbered for /save.
//
//	bob: Bob Builder
//	  about: can we fix it?
//	  photo: 3NH2…  [/save 4]
func (u *ui) showProfile(p client.Profile) {
	u.mu.Lock()
	defer u.mu.Unlock()
	who := u.name(p.User)
	if p.Updated.IsZero() {
		if who == "you" {
			u.writef("  you have no profile; /profile name <text> sets your name\n")
		} else {
			u.writef("  %s has no profile\n", who)
		}
		return
	}
	name := printable(p.Name)
	if name == "" {
		name = "(no name)"
	}
	u.writef("  %s: %s\n", who, name)
	if p.About != "" {
		lines := strings.Split(p.About, "\n")
		for i, l := range lines {
			lines[i] = printable(l)
		}
		u.writef("    about: %s\n", strings.Join(lines, "\n           "))
	}
	if p.Photo != "" {
		n := u.addFile(client.Attachment{AssetID: p.Photo, Name: p.User + "-photo", Kind: "image"})
		u.writef("    photo: %s [/save %d]\n", p.Photo, n)
	}
}

// printable replaces control characters (the server refuses them; a
// terminal must not get them anyway).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// iconText is how an icon event shows.
func iconText(by, icon string) string {
	if icon == "" {
		return fmt.Sprintf("%s removed the group icon", by)
	}
	return fmt.Sprintf("%s changed the group icon", by)
}
