/** `.proto` files imported as text (`with { type: "text" }`), see etcd-protos.ts. */
declare module "*.proto" {
  const text: string;
  export default text;
}
