using System.Reflection;
using System.Runtime.ExceptionServices;
using Microsoft.Extensions.DependencyInjection;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Conformance;

/// <summary>
/// The configured state store with its first <see cref="Failures"/> completions failing as a storage fault would (a deadlock
/// victim, a dropped connection): nothing committed, an exception thrown. Everything else goes to the real store.
/// </summary>
public class FaultyCompletions : DispatchProxy
{
    private IStateStore _inner = null!;
    private int _failures;

    /// <summary>Completions failed so far.</summary>
    public int Failed { get; private set; }

    /// <summary>Completions still to fail.</summary>
    public int Failures => Volatile.Read(ref _failures);

    /// <summary>Replaces the registered state store by one whose first <paramref name="failures"/> completions fail.</summary>
    public static FaultyCompletions Install(IServiceCollection services, int failures)
    {
        var registered = services.Last(d => d.ServiceType == typeof(IStateStore));
        services.Remove(registered);
        var proxy = (FaultyCompletions)(object)Create<IStateStore, FaultyCompletions>();
        proxy._failures = failures;
        services.AddSingleton(sp =>
        {
            proxy._inner = (IStateStore)(registered.ImplementationInstance
                ?? registered.ImplementationFactory?.Invoke(sp)
                ?? ActivatorUtilities.CreateInstance(sp, registered.ImplementationType!));
            return (IStateStore)(object)proxy;
        });
        return proxy;
    }

    /// <inheritdoc />
    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (targetMethod!.Name == nameof(IStateStore.CompleteNodeAsync) && Interlocked.Decrement(ref _failures) >= 0)
        {
            Failed++;
            return ValueTask.FromException<CompleteNodeResult>(new IOException("Injected storage fault: the completion was not committed."));
        }

        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Throw(ex.InnerException);
            throw;
        }
    }
}
