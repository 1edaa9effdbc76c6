using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Nova.Workflow.Handlers;

/// <summary>Invokes one registered handler inside a DI scope.</summary>
internal delegate ValueTask<JsonElement?> HandlerInvoker(IServiceProvider services, NodeContext context, JsonSerializerOptions json, CancellationToken cancellationToken);

/// <summary>A handler known by a stable name.</summary>
internal sealed record HandlerRegistration(string Name, HandlerInvoker Invoke, Type? ServiceType);

/// <summary>Builds invokers for the handler shapes users register.</summary>
internal static class HandlerInvokers
{
    private static readonly MethodInfo TypedMethod = typeof(HandlerInvokers).GetMethod(nameof(Typed), BindingFlags.NonPublic | BindingFlags.Static)!;

    public static HandlerRegistration ForType(string name, Type handlerType)
    {
        if (typeof(INodeHandler).IsAssignableFrom(handlerType))
        {
            return new(name, (sp, ctx, _, ct) => ((INodeHandler)sp.GetRequiredService(handlerType)).ExecuteAsync(ctx, ct), handlerType);
        }

        var typed = handlerType.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(INodeHandler<,>))
            ?? throw new ArgumentException($"Handler type {handlerType.Name} implements neither INodeHandler nor INodeHandler<TIn, TOut>.", nameof(handlerType));
        var args = typed.GetGenericArguments();
        var invoker = (HandlerInvoker)TypedMethod.MakeGenericMethod(handlerType, args[0], args[1]).Invoke(null, null)!;
        return new(name, invoker, handlerType);
    }

    public static HandlerRegistration ForDelegate<TIn, TOut>(string name, Func<TIn, NodeContext, CancellationToken, ValueTask<TOut>> handler) =>
        new(name, async (_, ctx, json, ct) => Serialize(await handler(Deserialize<TIn>(ctx, json), ctx, ct).ConfigureAwait(false), json), null);

    private static HandlerInvoker Typed<THandler, TIn, TOut>()
        where THandler : INodeHandler<TIn, TOut> =>
        async (sp, ctx, json, ct) =>
        {
            var input = Deserialize<TIn>(ctx, json);
            var handler = sp.GetRequiredService<THandler>();
            return Serialize(await handler.ExecuteAsync(input, ctx, ct).ConfigureAwait(false), json);
        };

    private static TIn Deserialize<TIn>(NodeContext context, JsonSerializerOptions json)
    {
        if (typeof(TIn) == typeof(JsonElement))
        {
            return (TIn)(object)context.Input;
        }

        try
        {
            return context.Input.Deserialize<TIn>(json)!;
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException)
        {
            throw new NodeInputException($"The input of node '{context.NodeId}' does not deserialize to {typeof(TIn).Name}: {ex.Message}", ex);
        }
    }

    private static JsonElement? Serialize<TOut>(TOut output, JsonSerializerOptions json) =>
        output is null ? null : output is JsonElement e ? e : JsonSerializer.SerializeToElement(output, json);
}

/// <summary>All handlers by name.</summary>
internal sealed class HandlerRegistry(IEnumerable<HandlerRegistration> registrations)
{
    private readonly Dictionary<string, HandlerRegistration> _byName = registrations
        .GroupBy(r => r.Name, StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);

    public bool Contains(string name) => _byName.ContainsKey(name);

    public HandlerRegistration? Find(string name) => _byName.GetValueOrDefault(name);
}
