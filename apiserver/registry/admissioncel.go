package registry

import (
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	validatingpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// admissionCEL compiles the CEL expressions of webhook configurations and
// admission policies when they are written, with the compiler the
// admission plugins use, so that an expression that does not compile is
// refused with its field path as kube-apiserver does, rather than failing
// requests later. The CEL environment is built on first use.
type admissionCEL struct {
	once sync.Once
	base *environment.EnvSet
}

func (c *admissionCEL) env() *environment.EnvSet {
	c.once.Do(func() { c.base = environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()) })
	return c.base
}

// celCheck compiles the expressions of one object, variables first so
// that later expressions may use them.
type celCheck struct {
	compiler *plugincel.CompositedCompiler
	// stored are the expressions the object held before this write; they
	// compile in the environment for stored expressions, so that an update
	// does not fail on an expression the server accepted before.
	stored sets.Set[string]
}

func (c *admissionCEL) check(stored sets.Set[string]) (*celCheck, *field.Error) {
	compiler, err := plugincel.NewCompositedCompiler(c.env())
	if err != nil {
		return nil, field.InternalError(nil, err)
	}
	return &celCheck{compiler: compiler, stored: stored}, nil
}

func (k *celCheck) mode(expression string) environment.Type {
	if k.stored.Has(expression) {
		return environment.StoredExpressions
	}
	return environment.NewExpressions
}

func (k *celCheck) compile(e plugincel.ExpressionAccessor, vars plugincel.OptionalVariableDeclarations, p *field.Path) field.ErrorList {
	result := k.compiler.CompileCELExpression(e, vars, k.mode(e.GetExpression()))
	return celFieldError(result.Error, e.GetExpression(), p)
}

func (k *celCheck) storeVariable(v *validatingpolicy.Variable, vars plugincel.OptionalVariableDeclarations, p *field.Path) field.ErrorList {
	result := k.compiler.CompileAndStoreVariable(v, vars, k.mode(v.Expression))
	return celFieldError(result.Error, v.Expression, p)
}

// matchConditions compiles matchConditions' expressions; they may use
// the authorizer, and params in a policy that has a paramKind.
func (k *celCheck) matchConditions(conditions []admissionregistrationv1.MatchCondition, hasParams bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range conditions {
		if strings.TrimSpace(c.Expression) == "" {
			continue
		}
		mc := matchconditions.MatchCondition(c)
		errs = append(errs, k.compile(&mc, plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}, p.Index(i).Child("expression"))...)
	}
	return errs
}

// policy compiles a ValidatingAdmissionPolicy's variables, validations,
// messageExpressions, matchConditions and audit annotations with the
// variables each may use, as upstream's validation does.
func (k *celCheck) policy(spec *admissionregistrationv1.ValidatingAdmissionPolicySpec, p *field.Path) field.ErrorList {
	hasParams := spec.ParamKind != nil
	vars := plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}
	var errs field.ErrorList
	for i, v := range spec.Variables {
		if v.Name != "" && strings.TrimSpace(v.Expression) != "" {
			errs = append(errs, k.storeVariable(&validatingpolicy.Variable{Name: v.Name, Expression: v.Expression}, vars, p.Child("variables").Index(i).Child("expression"))...)
		}
	}
	for i, v := range spec.Validations {
		vp := p.Child("validations").Index(i)
		if strings.TrimSpace(v.Expression) != "" {
			errs = append(errs, k.compile(&validatingpolicy.ValidationCondition{Expression: v.Expression}, vars, vp.Child("expression"))...)
		}
		if strings.TrimSpace(v.MessageExpression) != "" {
			errs = append(errs, k.compile(&validatingpolicy.MessageExpressionCondition{MessageExpression: v.MessageExpression},
				plugincel.OptionalVariableDeclarations{HasParams: hasParams}, vp.Child("messageExpression"))...)
		}
	}
	for i, a := range spec.AuditAnnotations {
		if strings.TrimSpace(a.ValueExpression) != "" {
			errs = append(errs, k.compile(&validatingpolicy.AuditAnnotationCondition{Key: a.Key, ValueExpression: a.ValueExpression}, vars,
				p.Child("auditAnnotations").Index(i).Child("valueExpression"))...)
		}
	}
	return append(errs, k.matchConditions(spec.MatchConditions, hasParams, p.Child("matchConditions"))...)
}

// policyExpressions are every expression of a policy, the ones an update
// finds stored.
func policyExpressions(spec *admissionregistrationv1.ValidatingAdmissionPolicySpec) sets.Set[string] {
	s := sets.New[string]()
	for _, v := range spec.Variables {
		s.Insert(v.Expression)
	}
	for _, v := range spec.Validations {
		s.Insert(v.Expression, v.MessageExpression)
	}
	for _, a := range spec.AuditAnnotations {
		s.Insert(a.ValueExpression)
	}
	for _, c := range spec.MatchConditions {
		s.Insert(c.Expression)
	}
	return s
}

// celFieldError turns a compilation error into the field error upstream
// reports.
func celFieldError(err *apiservercel.Error, expression string, p *field.Path) field.ErrorList {
	switch {
	case err == nil:
		return nil
	case err.Type == apiservercel.ErrorTypeRequired:
		return field.ErrorList{field.Required(p, err.Detail)}
	case err.Type == apiservercel.ErrorTypeInvalid:
		return field.ErrorList{field.Invalid(p, expression, err.Detail)}
	}
	return field.ErrorList{field.InternalError(p, err)}
}
