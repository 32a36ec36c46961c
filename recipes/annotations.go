package recipes

// Annotation keys prebake writes on images and layers, and that other packages
// (the renderer, the registry listing, the Packer plugin) read back.
const (
	// AnnotationKubernetesVersion is the Kubernetes version the image installs.
	AnnotationKubernetesVersion = "dev.prebake.kubernetes.version"
	// AnnotationComponent names the recipe component a layer holds.
	AnnotationComponent = "dev.prebake.component"
	// AnnotationComponentVersion is that component's version.
	AnnotationComponentVersion = "dev.prebake.component.version"
	// AnnotationJoinUnit, when set, names the systemd path unit baked into the
	// image that starts `kubeadm join` as soon as the rendered join file appears
	// under /run/prebake/ (value: the unit name, e.g. "prebake-join.path").
	AnnotationJoinUnit = "dev.prebake.join-unit"
	// AnnotationInitUnit, when set, names the systemd path unit that runs
	// `kubeadm init` as soon as `prebake render --init`'s configuration
	// appears (a control-plane image; e.g. "prebake-init.path").
	AnnotationInitUnit = "dev.prebake.init-unit"
	// AnnotationOSPackages lists, comma-separated, the packages the base OS
	// must provide (conntrack, socat, …).
	AnnotationOSPackages = "dev.prebake.os-packages"
	// AnnotationRecipe is the recipe's name; AnnotationRecipeDigest the sha256
	// of the resolved recipe the image was built from.
	AnnotationRecipe       = "dev.prebake.recipe"
	AnnotationRecipeDigest = "dev.prebake.recipe.digest"
)
