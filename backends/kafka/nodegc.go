package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// NodeTopics returns the nodes that have a topic under this Bus's prefix
// (each created by the node's first Subscribe), in no order.
func (b *Bus) NodeTopics(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.AdminTimeout)
	defer cancel()
	topics, err := b.adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("kafka: list node topics: %w", err)
	}
	prefix := b.cfg.TopicPrefix + "node."
	var nodes []string
	for name := range topics {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			if node, ok := unescapeName(rest); ok {
				nodes = append(nodes, node)
			}
		}
	}
	return nodes, nil
}

// DeleteNode deletes node's topic, with whatever it still held: for a
// node that is gone (its process stopped, its routes expired). A node
// with no topic is not an error. Publish to node afterwards returns nil
// at once (a stale route), and a Subscribe of it creates the topic again.
func (b *Bus) DeleteNode(ctx context.Context, node string) error {
	name, err := topicName(b.cfg.TopicPrefix, "node.", node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.AdminTimeout)
	defer cancel()
	resp, err := b.adm.DeleteTopics(ctx, name)
	if err != nil {
		return fmt.Errorf("kafka: delete topic of node %q: %w", node, err)
	}
	if r, ok := resp[name]; ok && r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka: delete topic of node %q: %w", node, r.Err)
	}
	if nt, err := b.topics.get(b.cfg.TopicPrefix, node); err == nil {
		nt.setMissing()
	}
	return nil
}

// unescapeName reverses topicName's escaping of a name: "_xx" is the
// byte 0xxx. It reports false for a string topicName cannot produce.
func unescapeName(s string) (string, bool) {
	if !strings.Contains(s, "_") {
		return s, s != ""
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), b.Len() > 0
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
