// Package docker holds the container recipes; its tests check them.
package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    int   `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas         int `yaml:"replicas"`
		BackoffLimit     int `yaml:"backoffLimit"`
		PodFailurePolicy struct {
			Rules []struct {
				Action      string `yaml:"action"`
				OnExitCodes *struct {
					ContainerName string `yaml:"containerName"`
					Operator      string `yaml:"operator"`
					Values        []int  `yaml:"values"`
				} `yaml:"onExitCodes"`
			} `yaml:"rules"`
		} `yaml:"podFailurePolicy"`
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func load(t *testing.T, name string) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("k8s", name))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// checkDBInit: non-root, read-only root filesystem, no privilege escalation,
// the password from a mounted Secret through PGPASSWORD_FILE, never inline.
func checkDBInit(t *testing.T, spec podSpec, c container) {
	t.Helper()
	sc := c.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: securityContext must set runAsNonRoot, readOnlyRootFilesystem and allowPrivilegeEscalation: false", c.Name)
	}
	if spec.SecurityContext.RunAsUser == 0 {
		t.Error("pod must run as a numeric non-root user")
	}
	var pwFile, template string
	for _, e := range c.Env {
		switch e.Name {
		case "PGPASSWORD", "DATABASE_URL":
			t.Errorf("%s must come from a file, not the environment", e.Name)
		case "PGPASSWORD_FILE":
			pwFile = e.Value
		case "DBINIT_TEMPLATE":
			template = e.Value
		}
	}
	if template != "none" {
		t.Errorf("container %s: DBINIT_TEMPLATE = %q; the Kubernetes examples run production mode (none)", c.Name, template)
	}
	if pwFile == "" {
		t.Fatal("no PGPASSWORD_FILE")
	}
	secretVolume := false
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != "" {
			secretVolume = true
		}
	}
	if !secretVolume || !strings.HasPrefix(pwFile, "/run/secrets/") {
		t.Errorf("PGPASSWORD_FILE %q must point into a mounted Secret", pwFile)
	}
}

func TestDeploymentRunsDBInitAsInitContainer(t *testing.T) {
	m := load(t, "deployment.yaml")
	if m.Kind != "Deployment" || m.Spec.Replicas < 2 {
		t.Fatalf("kind %s with %d replicas; the example shows several replicas sharing the lock", m.Kind, m.Spec.Replicas)
	}
	spec := m.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || !strings.Contains(spec.InitContainers[0].Image, "dbinit") {
		t.Fatalf("initContainers = %+v", spec.InitContainers)
	}
	checkDBInit(t, spec, spec.InitContainers[0])
}

func TestJobRunsDBInit(t *testing.T) {
	m := load(t, "job.yaml")
	if m.Kind != "Job" {
		t.Fatalf("kind %s", m.Kind)
	}
	spec := m.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("containers = %+v", spec.Containers)
	}
	checkDBInit(t, spec, spec.Containers[0])
	// One Job per release: a bare name could not be applied again.
	if m.Metadata.Name == "dbinit" || !strings.HasPrefix(m.Metadata.Name, "dbinit-") {
		t.Errorf("Job name %q: give each release its own (dbinit-<release>)", m.Metadata.Name)
	}
	// Deterministic failures end the Job; transient ones are retried.
	action := map[int]string{}
	for _, r := range m.Spec.PodFailurePolicy.Rules {
		if r.OnExitCodes == nil {
			continue
		}
		if r.OnExitCodes.ContainerName != spec.Containers[0].Name || r.OnExitCodes.Operator != "In" {
			t.Errorf("rule %+v must name container %s with operator In", r.OnExitCodes, spec.Containers[0].Name)
		}
		for _, v := range r.OnExitCodes.Values {
			action[v] = r.Action
		}
	}
	for code, want := range map[int]string{1: "FailJob", 2: "FailJob", 5: "FailJob", 3: "Count", 6: "Count"} {
		if action[code] != want {
			t.Errorf("exit code %d: podFailurePolicy action %q, want %s", code, action[code], want)
		}
	}
	if m.Spec.BackoffLimit < 1 {
		t.Error("backoffLimit must allow retries of exit codes 3 and 6")
	}
}
